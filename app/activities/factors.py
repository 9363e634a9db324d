"""Factor sets (methodology versions): the set in force on a day, loading from CSV or JSON, publishing.

A published set is immutable; an action is valued with the set in force on the
Asia/Shanghai date of its occurred_at. Nothing here commits.

Because a published set never changes, each process keeps the rows of the sets it
has used, by set id (`_published_rows`). Which set is in force on a day is kept for
FACTOR_SET_CACHE_SECONDS (`in_force_key`): a publication takes effect at once in the
process that made it (from its commit) and within that many seconds in the others
(the other gunicorn workers, RQ workers). Publications are normally made ahead of
their effective_from; only one in force from today or earlier meets that bound.
0 asks the database every time.
"""
import csv
import io
import threading
import time
from datetime import date, datetime
from importlib import resources
from typing import NamedTuple

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, bindparam, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..columns import utcnow
from ..errors import AppError, InvalidState, NotFound, ValidationFailed, flatten_messages, validation_error
from ..extensions import db
from ..localtime import local_date, today
from ..rows import loaded
from .models import FactorRow, FactorSet
from .recorders import how_credited
from .schemas import FactorRowIn, FactorSetIn

MAX_FACTOR_ROWS = 1000
CSV_COLUMNS = ("factor_set", "effective_from", "action_type", "variant", "unit", "kgco2e_per_unit",
               "points_per_unit", "daily_cap", "monthly_cap", "sources", "self_approvable", "verifiable",
               "evidence", "source")


class FactorSetPublished(AppError):
    status, code, title = 409, "invalid_state", "A published factor set is immutable; publish a new version"


class EffectiveDateTaken(AppError):
    status, code, title = 409, "effective_from_taken", "Another published factor set starts on that day"


class NoFactorSetInForce(NotFound):
    title = "No published factor set is in force"


# ---------------------------------------------------------------- the set in force


def _in_force(on: date):
    """SELECT of the published set with the greatest effective_from on or before `on`."""
    return (
        select(FactorSet).where(FactorSet.status == "published", FactorSet.effective_from <= on)
        .order_by(FactorSet.effective_from.desc()).limit(1)
    )


def set_in_force(on: date) -> FactorSet | None:
    """The published set with the greatest effective_from on or before `on`."""
    return db.session.scalar(_in_force(on))


def factors_in_force(on: date | None = None) -> dict:
    """The set in force today (Asia/Shanghai) with every row, or 404."""
    factor_set = set_in_force(on or today())
    if factor_set is None:
        raise NoFactorSetInForce("No factor set has been published for today")
    return {"factor_set": factor_set, "factors": factor_set.rows}


def list_factor_sets() -> list[FactorSet]:
    """Every set, drafts included, latest effective_from first."""
    return db.session.scalars(select(FactorSet).order_by(FactorSet.effective_from.desc(), FactorSet.code)).all()


def get_factor_set(code: str) -> FactorSet:
    """A set by its code, or 404."""
    factor_set = db.session.scalar(select(FactorSet).where(FactorSet.code == code))
    if factor_set is None:
        raise NotFound(f"No factor set {code}")
    return factor_set


COMPARED_FIELDS = ("unit", "kgco2e_per_unit", "points_per_unit", "daily_cap", "monthly_cap", "sources",
                   "self_approvable", "verifiable", "evidence", "source")


def compare_factor_sets(new: FactorSet, old: FactorSet | None) -> dict:
    """What `new` changes against `old` (usually the set in force): rows added, removed, and changed fields.

    Rows match on (action_type, variant); a change is (field, old value, new value), values as stored
    (Decimal factors and caps, "|"-joined sources).
    """
    before = {(r.action_type, r.variant): r for r in (old.rows if old is not None else [])}
    after = {(r.action_type, r.variant): r for r in new.rows}
    changed = []
    for key, row in after.items():
        if key in before:
            fields = [(name, getattr(before[key], name), getattr(row, name)) for name in COMPARED_FIELDS
                      if getattr(before[key], name) != getattr(row, name)]
            if fields:
                changed.append({"old": before[key], "new": row, "changes": fields})
    return {
        "added": [row for key, row in after.items() if key not in before],
        "removed": [row for key, row in before.items() if key not in after],
        "changed": changed,
        "unchanged": sum(1 for key in after if key in before) - len(changed),
    }


def create_factor_set(data: dict, actor_id: str | None = None) -> FactorSet:
    """A draft set from validated {code, effective_from, rows}; a draft of that code is replaced.

    A published set is never replaced (409 invalid_state). Does not commit.
    """
    _check_unique_rows(data["rows"], "rows")
    factor_set = db.session.scalar(select(FactorSet).where(FactorSet.code == data["code"]).with_for_update())
    if factor_set is not None and factor_set.status == "published":
        raise FactorSetPublished(f"Factor set {factor_set.code} is published; import the change under a new code")
    if factor_set is None:
        factor_set = FactorSet(code=data["code"], effective_from=data["effective_from"], status="draft",
                               created_by=actor_id)
        db.session.add(factor_set)
    else:
        factor_set.effective_from = data["effective_from"]
        factor_set.rows.clear()
        db.session.flush()
    for position, row in enumerate(data["rows"]):
        factor_set.rows.append(FactorRow(
            position=position, action_type=row["action_type"], variant=row.get("variant") or "",
            unit=row["unit"], kgco2e_per_unit=row["kgco2e_per_unit"], points_per_unit=row["points_per_unit"],
            daily_cap=row.get("daily_cap"), monthly_cap=row.get("monthly_cap"), sources="|".join(row["sources"]),
            self_approvable=row.get("self_approvable", False), verifiable=row["verifiable"],
            evidence=row["evidence"], source=row["source"].strip(),
        ))
    db.session.flush()
    return factor_set


def _check_unique_rows(rows: list[dict], prefix: str) -> None:
    seen, errors = {}, {}
    for index, row in enumerate(rows):
        key = (row["action_type"], row.get("variant") or "")
        if key in seen:
            errors[f"{prefix}.{index}.variant"] = [f"Repeats action_type and variant of {prefix}.{seen[key]}."]
        seen.setdefault(key, index)
    if errors:
        raise ValidationFailed(errors)


class CsvProblem(NamedTuple):
    line: int
    row: int | None  # index of the data row, None for the header
    field: str
    message: str


def parse_factor_csv(text: str) -> tuple[dict, list[CsvProblem]]:
    """Read a factor CSV (the columns of factors.csv) into {code, effective_from, rows}.

    Returns the data and every problem, sorted by line; the data is usable only when there are
    none. One file holds one factor set.
    """
    try:
        return _read_factor_csv(text)
    except csv.Error as exc:  # e.g. a field beyond the csv module's size limit
        return {}, [CsvProblem(0, None, "body", f"not a readable CSV file ({exc})")]


def _read_factor_csv(text: str) -> tuple[dict, list[CsvProblem]]:
    problems: list[CsvProblem] = []
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = reader.fieldnames or []
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing:
        problems.append(CsvProblem(1, None, "header", f"missing column(s): {', '.join(missing)}"))
    if unknown:
        problems.append(CsvProblem(1, None, "header", f"unknown column(s): {', '.join(unknown)}"))
    if problems:
        return {}, problems
    first: tuple[str, str] | None = None
    rows, seen = [], {}
    line = 1
    for index, raw in enumerate(reader):
        start, line = line + 1, reader.line_num  # a quoted field may span lines
        if None in raw or any(v is None for v in raw.values()):
            problems.append(CsvProblem(start, index, "row", f"expected {len(CSV_COLUMNS)} columns"))
            continue
        this_set = (raw["factor_set"].strip(), raw["effective_from"].strip())
        first = first or this_set
        if this_set != first:
            problems.append(CsvProblem(start, index, "factor_set",
                                       f"one file holds one factor set ({first[0]} from {first[1]})"))
            continue
        candidate = {
            "action_type": raw["action_type"].strip(), "variant": raw["variant"].strip() or None,
            "unit": raw["unit"].strip(), "kgco2e_per_unit": raw["kgco2e_per_unit"].strip(),
            "points_per_unit": raw["points_per_unit"].strip(),
            "daily_cap": raw["daily_cap"].strip() or None, "monthly_cap": raw["monthly_cap"].strip() or None,
            "sources": [s.strip() for s in raw["sources"].split("|") if s.strip()],
            "self_approvable": raw["self_approvable"].strip().lower() or "false",
            "verifiable": raw["verifiable"].strip().lower(), "evidence": raw["evidence"].strip(),
            "source": raw["source"],
        }
        try:
            row = FactorRowIn().load(candidate)
        except ValidationError as exc:
            for field, messages in flatten_messages(exc.messages).items():
                problems.extend(CsvProblem(start, index, field, m) for m in messages)
            continue
        key = (row["action_type"], row["variant"] or "")
        if key in seen:
            problems.append(CsvProblem(start, index, "variant", f"repeats action_type and variant of line {seen[key]}"))
            continue
        seen[key] = start
        rows.append(row)
    if first is None:
        problems.append(CsvProblem(1, None, "rows", "the file holds no factor rows"))
        return {}, problems
    if len(rows) > MAX_FACTOR_ROWS:
        problems.append(CsvProblem(1, None, "rows", f"at most {MAX_FACTOR_ROWS} rows in one factor set"))
    try:
        data = FactorSetIn(only=("code", "effective_from")).load({"code": first[0], "effective_from": first[1]})
    except ValidationError as exc:
        data = {}
        for field, messages in flatten_messages(exc.messages).items():
            problems.extend(CsvProblem(2, 0, "factor_set" if field == "code" else field, m) for m in messages)
    problems.sort(key=lambda p: p[0])
    return {**data, "rows": rows}, problems


def csv_problems_as_errors(problems: list[CsvProblem]) -> ValidationFailed:
    """CSV problems as a 422 naming `rows.<index>.<field>`; each message gives the CSV line."""
    errors: dict[str, list[str]] = {}
    for problem in problems:
        key = problem.field if problem.row is None else f"rows.{problem.row}.{problem.field}"
        errors.setdefault(key, []).append(f"line {problem.line}: {problem.message}")
    return ValidationFailed(errors)


def create_factor_set_from_csv(raw: bytes, actor_id: str | None = None) -> FactorSet:
    """A draft set from a UTF-8 factor CSV; any bad row refuses the whole file (422). Does not commit."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise validation_error("body", "The CSV must be UTF-8 text.") from None
    data, problems = parse_factor_csv(text)
    if problems:
        raise csv_problems_as_errors(problems)
    return create_factor_set(data, actor_id)


def publish_factor_set(code: str, actor_id: str | None = None) -> FactorSet:
    """Publish a draft: from now on it is immutable and in force from its effective_from. Does not commit."""
    factor_set = db.session.scalar(
        select(FactorSet).where(FactorSet.code == code).with_for_update().execution_options(populate_existing=True)
    )
    if factor_set is None:
        raise NotFound(f"No factor set {code}")
    if factor_set.status == "published":
        raise InvalidState(f"Factor set {code} is already published")
    if not factor_set.rows:
        raise InvalidState(f"Factor set {code} has no rows")
    taken = db.session.scalar(select(FactorSet.code).where(FactorSet.published_from == factor_set.effective_from))
    if taken:
        raise EffectiveDateTaken(f"Factor set {taken} already starts on {factor_set.effective_from}")
    try:
        with db.session.begin_nested():
            factor_set.status = "published"
            factor_set.published_at = utcnow()
            factor_set.published_from = factor_set.effective_from
    except IntegrityError:
        raise EffectiveDateTaken(f"Another factor set was just published for {factor_set.effective_from}") from None
    db.session.info[_PUBLISHING] = True  # this transaction reads no kept set in force, and drops them on commit
    return factor_set


def load_project_factors() -> FactorSet:
    """The project's factors.csv, loaded and published unless its set exists already. Does not commit."""
    text = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8")
    data, problems = parse_factor_csv(text)
    if problems:
        raise RuntimeError(f"app/data/factors.csv is invalid: {problems}")
    found = db.session.scalar(select(FactorSet).where(FactorSet.code == data["code"]))
    if found is not None and found.status == "published":
        return found
    factor_set = create_factor_set(data)
    return publish_factor_set(factor_set.code)


# ---------------------------------------------------------------- published rows, kept per process


class _Published(NamedTuple):
    """A published set's columns and its rows' columns, by (action_type, variant): plain values."""

    set_values: dict
    rows: dict  # (action_type, variant) → dict of the row's columns


_SET_COLUMNS = [c.key for c in FactorSet.__table__.columns]
_ROW_COLUMNS = [c.key for c in FactorRow.__table__.columns]
_IN_FORCE_KEY = (
    select(FactorSet.id, FactorSet.published_at).where(FactorSet.status == "published", FactorSet.effective_from <= bindparam("on"))
    .order_by(FactorSet.effective_from.desc()).limit(1)
)
_SET_WITH_ROWS = (
    select(FactorSet.__table__, FactorRow.__table__)
    .join_from(FactorSet.__table__, FactorRow.__table__, FactorRow.factor_set_id == FactorSet.id)
    .where(FactorSet.id == bindparam("set_id"), FactorSet.status == "published")
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)  # both tables have an id
)
_KEEP_SETS = 32  # far more than are ever in use at once
# (set id, published_at) → its values. published_at is part of the key so that a publication rolled back
# (a draft's rows may then change) and published again is never confused with the first one.
_published: dict[tuple, _Published] = {}
_published_lock = threading.Lock()


_PUBLISHING = "factor_set_published"
_KEEP_DAYS = 64
# (database, day) → (monotonic deadline, (set id, published_at) or None): which set is in force on a day,
# kept briefly (the database is part of the key for a process that serves more than one app).
_kept_in_force: dict[tuple[str, date], tuple[float, tuple | None]] = {}
_clock = time.monotonic


def in_force_key(on: date) -> tuple | None:
    """(id, published_at) of the published set in force on `on`; asked of the database (one indexed
    query of one row) at most once per FACTOR_SET_CACHE_SECONDS per day and process.

    A transaction that has published a set asks every time and keeps nothing (what it sees is not
    yet committed); its commit drops what this process kept.
    """
    config = current_app.config
    seconds = config.get("FACTOR_SET_CACHE_SECONDS", 0)
    keep = seconds > 0 and not db.session.info.get(_PUBLISHING)
    where = (config["SQLALCHEMY_DATABASE_URI"], on)
    if keep:
        kept = _kept_in_force.get(where)
        if kept is not None and kept[0] > _clock():
            return kept[1]
    found = db.session.execute(_IN_FORCE_KEY, {"on": on}).first()
    key = tuple(found) if found is not None else None
    if keep:
        with _published_lock:
            if len(_kept_in_force) >= _KEEP_DAYS:
                _kept_in_force.clear()
            _kept_in_force[where] = (_clock() + seconds, key)
    return key


def forget_sets_in_force() -> None:
    """Ask the database again which set is in force (after a publication, and between tests)."""
    with _published_lock:
        _kept_in_force.clear()


@event.listens_for(Session, "after_commit")
def _published_now_in_force(session):
    if session.info.pop(_PUBLISHING, None):
        forget_sets_in_force()


@event.listens_for(Session, "after_soft_rollback")
def _publication_undone(session, previous_transaction):
    if previous_transaction.parent is None and session.info.pop(_PUBLISHING, None):
        forget_sets_in_force()


def _published_rows(key: tuple | None) -> _Published | None:
    """A published set's values, read once per process (a published set never changes)."""
    if key is None:
        return None
    found = _published.get(key)
    if found is not None:
        return found
    result = db.session.execute(_SET_WITH_ROWS, {"set_id": key[0]}).mappings().all()
    if not result:
        return None
    set_values = {key: result[0][f"factor_sets_{key}"] for key in _SET_COLUMNS}
    rows = {}
    for record in result:
        values = {key: record[f"factor_rows_{key}"] for key in _ROW_COLUMNS}
        rows[(values["action_type"], values["variant"])] = values
    found = _Published(set_values, rows)
    if set_values["published_at"] != key[1]:
        return found  # published again since the key was read: use it, keep nothing
    with _published_lock:
        if len(_published) >= _KEEP_SETS:
            _published.clear()
        _published[key] = found
    return found


def forget_published_rows() -> None:
    """Drop what this process keeps (tests that roll published sets back use it)."""
    with _published_lock:
        _published.clear()


def _row_instance(published: _Published, values: dict) -> FactorRow:
    row = loaded(FactorRow, values, refresh=False)  # published rows never change
    if "factor_set" not in row.__dict__:
        set_committed_value(row, "factor_set", loaded(FactorSet, published.set_values, refresh=False))
    return row


def row_in_force(action_type: str, variant: str | None, unit: str, on: date,
                 unless_set: str | None = None) -> FactorRow | None:
    """The row of the set in force on `on` for (action_type, variant, unit), or None. One query.

    None too when the set in force is `unless_set` (the caller has that set's row already).
    """
    key = in_force_key(on)
    if key is None or key[0] == unless_set:
        return None
    published = _published_rows(key)
    values = published.rows.get((action_type, variant or "")) if published is not None else None
    if values is None or values["unit"] != unit:
        return None
    return _row_instance(published, values)


# ---------------------------------------------------------------- the row of an action


def resolve_factor(action_type, variant, unit, occurred_at: datetime, recorder: str | None, errors: dict):
    """The factor row in force on occurred_at for (action_type, variant), checking unit and recorder.

    Adds problems to `errors` (naming action_type, variant, unit or occurred_at) and returns None then.
    One query (which set is in force); the rows come from the process's copy of that published set.
    """
    published = _published_rows(in_force_key(local_date(occurred_at)))
    if published is None:
        errors["occurred_at"] = ["No published factor set covers this date."]
        return None
    candidates = [values for (kind, _), values in published.rows.items() if kind == action_type]
    if not candidates:
        errors["action_type"] = [f"Unknown action type in factor set {published.set_values['code']}."]
        return None
    wanted = variant or ""
    values = published.rows.get((action_type, wanted))
    row = _row_instance(published, values) if values is not None else None
    if row is None:
        known = sorted(r["variant"] for r in candidates if r["variant"])
        if not known:
            errors["variant"] = ["This action type has no variants; omit variant."]
        elif not wanted:
            errors["variant"] = [f"Required for this action type: one of {', '.join(known)}."]
        else:
            errors["variant"] = [f"Unknown variant; one of {', '.join(known)}."]
        return None
    if unit != row.unit:
        errors["unit"] = [f"Must be {row.unit} for this action."]
    if recorder == "resident" and recorder not in row.source_list:
        errors["action_type"] = [how_credited(row.source_list)]
    elif recorder is not None and recorder not in row.source_list:
        errors["action_type"] = [f"This action cannot be recorded by {recorder}; "
                                 f"it may be recorded by {', '.join(row.source_list)}."]
    return None if errors else row
