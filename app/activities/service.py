"""Factor sets, green actions, their review and valuation (caps, points, verified grams).

None of these functions commit: the route, job or command that calls them owns the transaction.
"""
import csv
import io
import json
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext
from importlib import resources
from typing import NamedTuple
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..accounts.models import Household, User
from ..columns import utcnow
from ..errors import AppError, Conflict, InvalidState, NotFound, ValidationFailed, validation_error
from ..extensions import db
from ..ledger import service as ledger
from ..campaigns import service as campaigns
from .models import RECORDER_OF_SOURCE, SOURCES, Action, CapUsage, FactorRow, FactorSet
from ..errors import flatten_messages
from ..schemas import page_rows
from .schemas import FactorRowIn, FactorSetIn, plain

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(minutes=5)
WHOLE_UNITS = ("item", "event")
MAX_QUANTITY = Decimal("999999.999")
MILLI = Decimal("0.001")
MAX_FACTOR_ROWS = 1000
CSV_COLUMNS = ("factor_set", "effective_from", "action_type", "variant", "unit", "kgco2e_per_unit",
               "points_per_unit", "daily_cap", "monthly_cap", "sources", "self_approvable", "verifiable",
               "evidence", "source")


class FactorSetPublished(AppError):
    status, code, title = 409, "invalid_state", "A published factor set is immutable; publish a new version"


class EffectiveDateTaken(AppError):
    status, code, title = 409, "effective_from_taken", "Another published factor set starts on that day"


class AlreadyAppealed(AppError):
    status, code, title = 409, "already_appealed", "This action was already appealed once"


class NoFactorSetInForce(NotFound):
    title = "No published factor set is in force"


def local_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware datetime."""
    return moment.astimezone(SHANGHAI).date()


# ---------------------------------------------------------------- factor sets


def _in_force(on: date):
    """SELECT of the published set with the greatest effective_from on or before `on`."""
    return (
        select(FactorSet).where(FactorSet.status == "published", FactorSet.effective_from <= on)
        .order_by(FactorSet.effective_from.desc()).limit(1)
    )


def set_in_force(on: date) -> FactorSet | None:
    """The published set with the greatest effective_from on or before `on`."""
    return db.session.scalar(_in_force(on))


def effective_until(factor_set: FactorSet) -> date | None:
    """The last day a published set is in force, once a later set has been published."""
    if factor_set.status != "published":
        return None
    later = db.session.scalar(
        select(func.min(FactorSet.effective_from))
        .where(FactorSet.status == "published", FactorSet.effective_from > factor_set.effective_from)
    )
    return later - timedelta(days=1) if later else None


def factor_set_view(factor_set: FactorSet) -> dict:
    """A set's summary as the API shows it."""
    return {
        "code": factor_set.code, "effective_from": factor_set.effective_from,
        "effective_until": effective_until(factor_set), "status": factor_set.status,
        "published_at": factor_set.published_at, "created_at": factor_set.created_at,
        "row_count": len(factor_set.rows),
    }


def factors_in_force(today: date | None = None) -> dict:
    """The set in force today (Asia/Shanghai) with every row, or 404."""
    factor_set = set_in_force(today or local_date(utcnow()))
    if factor_set is None:
        raise NoFactorSetInForce("No factor set has been published for today")
    return {"factor_set": factor_set_view(factor_set), "factors": factor_set.rows}


def list_factor_sets() -> list[dict]:
    """Every set, drafts included, latest effective_from first."""
    sets = db.session.scalars(select(FactorSet).order_by(FactorSet.effective_from.desc(), FactorSet.code)).all()
    return [factor_set_view(s) for s in sets]


def get_factor_set(code: str) -> FactorSet:
    """A set by its code, or 404."""
    factor_set = db.session.scalar(select(FactorSet).where(FactorSet.code == code))
    if factor_set is None:
        raise NotFound(f"No factor set {code}")
    return factor_set


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


# ---------------------------------------------------------------- recording actions


def _check_quantity(quantity, errors: dict) -> None:
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        errors["quantity"] = ["Must be a decimal number."]
    elif quantity <= 0:
        errors["quantity"] = ["Must be greater than 0."]
    elif quantity > MAX_QUANTITY or quantity != quantity.quantize(MILLI):
        errors["quantity"] = ["Must match ^[0-9]{1,6}(\\.[0-9]{1,3})?$."]


def _check_occurred_at(occurred_at, errors: dict) -> None:
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        errors["occurred_at"] = ["Must include a UTC offset, e.g. 2026-05-01T08:30:00+08:00."]
        return
    now = utcnow()
    if occurred_at < now - MAX_AGE:
        errors["occurred_at"] = ["Must be within the last 30 days."]
    elif occurred_at > now + MAX_AHEAD:
        errors["occurred_at"] = ["Must not be more than 5 minutes ahead of the server clock."]


def resolve_factor(action_type, variant, unit, occurred_at: datetime, recorder: str | None, errors: dict):
    """The factor row in force on occurred_at for (action_type, variant), checking unit and recorder.

    Adds problems to `errors` (naming action_type, variant, unit or occurred_at) and returns None then.
    """
    on = local_date(occurred_at)
    in_force = _in_force(on).with_only_columns(FactorSet.id).scalar_subquery()
    # One round trip, one row on the happy path; the other variants are read only to explain a miss.
    exact = db.session.scalars(
        select(FactorRow).where(FactorRow.factor_set_id == in_force, FactorRow.action_type == action_type,
                                FactorRow.variant == (variant or ""))
    ).all()
    candidates = exact or db.session.scalars(
        select(FactorRow).where(FactorRow.factor_set_id == in_force, FactorRow.action_type == action_type)
    ).all()
    if not candidates:
        factor_set = set_in_force(on)
        if factor_set is None:
            errors["occurred_at"] = ["No published factor set covers this date."]
        else:
            errors["action_type"] = [f"Unknown action type in factor set {factor_set.code}."]
        return None
    wanted = variant or ""
    row = next((r for r in candidates if r.variant == wanted), None)
    if row is None:
        known = sorted(r.variant for r in candidates if r.variant)
        if not known:
            errors["variant"] = ["This action type has no variants; omit variant."]
        elif not wanted:
            errors["variant"] = [f"Required for this action type: one of {', '.join(known)}."]
        else:
            errors["variant"] = [f"Unknown variant; one of {', '.join(known)}."]
        return None
    if unit != row.unit:
        errors["unit"] = [f"Must be {row.unit} for this action."]
    if recorder is not None and recorder not in row.source_list:
        errors["action_type"] = [f"This action cannot be recorded by {recorder}; "
                                 f"it may be recorded by {', '.join(row.source_list)}."]
    return None if errors else row


def record_action(*, household_id: str, resident_id: str | None, action_type: str, variant: str | None,
                  quantity: Decimal, unit: str, occurred_at: datetime, source: str,
                  actor_id: str | None, evidence: str | None = None, note: str | None = None,
                  integration_id: str | None = None, external_id: str | None = None,
                  review_reason: str | None = None) -> Action:
    """Validate against the factor row in force on occurred_at, store, and approve when the rules say so.

    source: "self_reported" | "staff" | "device" | "import". Raises ValidationFailed naming fields
    (action_type, variant, unit, quantity, occurred_at). device/import records are approved on arrival
    unless review_reason is given (anomaly, decided by the caller) or the quantity exceeds what the daily
    or monthly cap still allows (then pending with review_reason "exceeds_cap"). Does not commit.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown action source {source!r}")
    errors: dict[str, list[str]] = {}
    household = db.session.get(Household, household_id) if isinstance(household_id, str) else None
    if household is None:
        errors["household_id"] = ["No such household."]
    if resident_id is not None:
        member = db.session.get(User, resident_id) if isinstance(resident_id, str) else None
        if member is None or member.household_id != household_id:
            errors["resident_id"] = ["Not a member of this household."]
    _check_quantity(quantity, errors)
    _check_occurred_at(occurred_at, errors)
    for field, value, limit in (("action_type", action_type, 40), ("variant", variant, 40), ("unit", unit, 12),
                                ("evidence", evidence, 500), ("note", note, 500),
                                ("external_id", external_id, 128), ("integration_id", integration_id, 32),
                                ("review_reason", review_reason, 40)):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.setdefault(field, []).append(f"At most {limit} characters.")
    if not isinstance(action_type, str) or not action_type:
        errors.setdefault("action_type", ["Required."])
    row = None
    if not errors:
        row = resolve_factor(action_type, variant, unit, occurred_at, RECORDER_OF_SOURCE[source], errors)
    if row is not None and unit in WHOLE_UNITS and quantity != quantity.to_integral_value():
        errors["quantity"] = [f"Must be a whole number for the unit {unit}."]
    if errors:
        raise ValidationFailed(errors)
    action = Action(
        household_id=household.id, resident_id=resident_id, community_id=household.community_id,
        action_type=action_type, variant=variant or None, quantity=quantity, unit=unit,
        occurred_at=occurred_at, source=source, status="pending", evidence=evidence, note=note,
        factor_id=row.id, factor=row, recorded_by=actor_id, integration_id=integration_id,
        external_id=external_id, appeal=False, reduction_g=0, verified=False, base_points=0,
        campaign_points=0, points=0, created_at=utcnow(),
    )
    db.session.add(action)
    db.session.flush()  # a repeated (integration_id, external_id) fails here, before any points move
    if source == "self_reported":
        if row.self_approvable:
            _approve(action, approver_id=None, reviewed=False)
    elif source == "staff":
        _approve(action, approver_id=actor_id, reviewed=True)
    elif review_reason:
        action.review_reason = review_reason
    elif not _approve(action, approver_id=actor_id, reviewed=True, whole_or_nothing=True):
        action.review_reason = "exceeds_cap"
    db.session.flush()
    return action


def report_action(user: User, data: dict) -> Action:
    """A resident's self-report. Does not commit."""
    return record_action(household_id=user.household_id, resident_id=user.id, source="self_reported",
                         actor_id=user.id, **_action_fields(data))


def record_staff_action(staff: User, data: dict) -> Action:
    """Staff-assisted logging by household card: approved at once. Does not commit."""
    card = "".join(data["household_card"].split())  # the printed card groups its digits with spaces
    household = db.session.scalar(select(Household).where(Household.card_number == card))
    if household is None or household.community_id not in staff.community_ids:
        raise NotFound("No household with that card in your communities")
    return record_action(household_id=household.id, resident_id=data.get("resident_id"), source="staff",
                         actor_id=staff.id, **_action_fields(data))


def _action_fields(data: dict) -> dict:
    return {k: data.get(k) for k in ("action_type", "variant", "quantity", "unit", "occurred_at",
                                      "evidence", "note")}


# ---------------------------------------------------------------- valuation and caps


def _milli(value: Decimal) -> int:
    return int((value * 1000).to_integral_value(rounding=ROUND_FLOOR))


def _cap_periods(action: Action, row: FactorRow) -> list[tuple[str, int, str]]:
    """(period key, cap in thousandths, "daily"|"monthly") for the caps the row has, in lock order."""
    local = action.occurred_at.astimezone(SHANGHAI)
    periods = []
    if row.daily_cap is not None:
        periods.append((f"D:{local.date().isoformat()}", _milli(row.daily_cap), "daily"))
    if row.monthly_cap is not None:
        periods.append((f"M:{local.strftime('%Y-%m')}", _milli(row.monthly_cap), "monthly"))
    return periods


def _lock_cap_usage(household_id: str, factor_id: str, periods: list[str]) -> dict[str, int]:
    """Create the usage rows if missing and lock them (fixed order); returns period → used thousandths."""
    if not periods:
        return {}
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(CapUsage)
        .values([{"household_id": household_id, "factor_id": factor_id, "period": p, "used_milli": 0}
                 for p in sorted(periods)])
        .on_conflict_do_nothing()
    )
    rows = db.session.execute(
        select(CapUsage.period, CapUsage.used_milli)
        .where(CapUsage.household_id == household_id, CapUsage.factor_id == factor_id,
               CapUsage.period.in_(periods))
        .order_by(CapUsage.period).with_for_update()
    ).all()
    return {period: used for period, used in rows}


def _change_cap_usage(household_id: str, factor_id: str, period: str, delta: int, cap: int) -> None:
    """Add `delta` thousandths to a locked usage row, guarded so it stays within [0, cap]."""
    if delta == 0:
        return
    guard = CapUsage.used_milli + delta <= cap if delta > 0 else CapUsage.used_milli + delta >= 0
    changed = db.session.execute(
        update(CapUsage)
        .where(CapUsage.household_id == household_id, CapUsage.factor_id == factor_id,
               CapUsage.period == period, guard)
        .values(used_milli=CapUsage.used_milli + delta)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise Conflict("The household's cap usage changed concurrently; retry")


def valuation_row(action: Action) -> FactorRow:
    """The row in force on occurred_at now; the recorded row if a later set dropped the type or unit."""
    factor_set = set_in_force(local_date(action.occurred_at))
    if factor_set is not None and factor_set.id != action.factor.factor_set_id:
        for row in factor_set.rows:
            if (row.action_type, row.variant, row.unit) == (action.action_type, action.variant or "", action.unit):
                return row
    return action.factor


def _approve(action: Action, *, approver_id: str | None, reviewed: bool, whole_or_nothing: bool = False) -> bool:
    """Value an action (caps, grams, points), credit the wallet and freeze the receipt.

    `reviewed`: approved by staff review, a device or an import (so verified if the row is
    verifiable). With `whole_or_nothing`, an action the caps would cut stays pending (returns False).
    """
    # The wallet and its issuance shard first, as integration batches lock them: one lock order, no deadlock.
    ledger.lock_households([action.household_id])
    row = valuation_row(action)
    periods = _cap_periods(action, row)
    used = _lock_cap_usage(action.household_id, row.id, [p for p, _, _ in periods])
    wanted = _milli(action.quantity)
    credited_milli, binding = wanted, None
    for period, cap, name in periods:
        left = max(cap - used[period], 0)
        if left < credited_milli:
            credited_milli, binding = left, name
    if whole_or_nothing and credited_milli < wanted:
        return False
    for period, cap, _ in periods:
        _change_cap_usage(action.household_id, row.id, period, credited_milli, cap)
    with localcontext() as exact:
        exact.prec = 60  # wide enough that no product is ever rounded before the floor
        credited = (Decimal(credited_milli) / 1000).quantize(MILLI)
        reduction_g = int((credited * row.kgco2e_per_unit * 1000).to_integral_value(rounding=ROUND_FLOOR))
        base_points = int((credited * row.points_per_unit).to_integral_value(rounding=ROUND_FLOOR))
    campaign_points = 0
    now = utcnow()
    action.factor_id, action.factor = row.id, row
    action.status = "approved"
    action.credited_quantity = credited
    action.reduction_g, action.base_points, action.campaign_points = reduction_g, base_points, campaign_points
    action.points = base_points + campaign_points
    action.verified = bool(row.verifiable and reviewed)
    action.approved_by, action.approved_at = approver_id, now
    action.receipt = json.dumps({
        "factor_set": row.factor_set.code,
        "factor_id": row.id,
        "action_type": row.action_type,
        "variant": row.variant or None,
        "unit": row.unit,
        "kgco2e_per_unit": plain(row.kgco2e_per_unit),
        "points_per_unit": plain(row.points_per_unit),
        "quantity": plain(action.quantity),
        "credited_quantity": plain(credited),
        "cap_applied": binding,
        "cap_remaining": {
            name: plain(Decimal(cap - used[period] - credited_milli) / 1000) for period, cap, name in periods
        },
        "reduction_g": reduction_g,
        "verified": action.verified,
        "base_points": base_points,
        "campaigns": [],
        "campaign_points": campaign_points,
        "points": action.points,
        "approved_by": approver_id,
        "approved_at": now.isoformat(),
        "source": action.source,
    }, ensure_ascii=False)
    db.session.flush()
    if base_points:
        ledger.award(action.household_id, base_points, kind="action", ref_type="action", ref_id=action.id,
                     actor_id=approver_id)
    campaigns.apply_campaigns(action)  # campaign parts from their budgets: sets campaign_points, points, receipt
    return True


def _release_caps(action: Action) -> None:
    """Give back the cap allowance a reversed action used."""
    row = action.factor
    periods = _cap_periods(action, row)
    credited_milli = _milli(action.credited_quantity or Decimal(0))
    if not periods or credited_milli == 0:
        return
    _lock_cap_usage(action.household_id, row.id, [p for p, _, _ in periods])
    for period, cap, _ in periods:
        _change_cap_usage(action.household_id, row.id, period, -credited_milli, cap)


# ---------------------------------------------------------------- review


def _locked(action_id: str) -> Action | None:
    return db.session.scalar(
        select(Action).where(Action.id == action_id)
        .with_for_update(of=Action)  # only the action: its factor row is shared by every household
        .execution_options(populate_existing=True)
    )


def _for_staff(action_id: str, staff: User) -> Action:
    action = _locked(action_id)
    if action is None or action.community_id not in staff.community_ids:
        raise NotFound("No such action in your communities")
    return action


def approve_action(action_id: str, staff: User) -> Action:
    """Approve a pending action: value it and credit the household. Does not commit."""
    action = _for_staff(action_id, staff)
    if action.status != "pending":
        raise InvalidState(f"Only a pending action can be approved; this one is {action.status}")
    _approve(action, approver_id=staff.id, reviewed=True)
    return action


def reject_action(action_id: str, staff: User, reason: str) -> Action:
    """Reject a pending action with a reason the resident sees. Does not commit."""
    action = _for_staff(action_id, staff)
    if action.status != "pending":
        raise InvalidState(f"Only a pending action can be rejected; this one is {action.status}")
    action.status, action.reject_reason = "rejected", reason.strip()
    action.rejected_by, action.rejected_at = staff.id, utcnow()
    db.session.flush()
    return action


def reverse_action(action_id: str, staff: User, reason: str) -> Action:
    """Reverse an approved action: take its points back (a clawback for what was spent), free its caps.

    Does not commit.
    """
    action = _for_staff(action_id, staff)
    if action.status != "approved":
        raise InvalidState(f"Only an approved action can be reversed; this one is {action.status}")
    ledger.lock_households([action.household_id])  # wallet before cap rows, as approvals do
    _release_caps(action)
    campaigns.reverse_campaign_parts(action, actor_id=staff.id, reason=reason.strip())  # back to their budgets
    if action.base_points:
        ledger.take_back(action.household_id, action.base_points, kind="action_reversal", ref_type="action",
                         ref_id=action.id, actor_id=staff.id, reason=reason.strip())
    action.status, action.reversal_reason = "reversed", reason.strip()
    action.reversed_by, action.reversed_at = staff.id, utcnow()
    db.session.flush()
    return action


def appeal_action(action_id: str, user: User, note: str) -> Action:
    """A resident appeals a rejection, once: the action goes back to pending. Does not commit."""
    action = _locked(action_id)
    if action is None or action.household_id != user.household_id:
        raise NotFound("No such action in your household")
    if action.appeal:
        raise AlreadyAppealed()
    if action.status != "rejected":
        raise InvalidState(f"Only a rejected action can be appealed; this one is {action.status}")
    action.status, action.appeal, action.appeal_note = "pending", True, note.strip()
    db.session.flush()
    return action


# ---------------------------------------------------------------- reading


def get_action(action_id: str, user: User) -> Action:
    """An action the caller may see: its household's resident, staff of its community, a district admin."""
    action = db.session.get(Action, action_id)
    if action is None:
        raise NotFound("No such action")
    visible = (
        (user.role == "resident" and action.household_id == user.household_id)
        or (user.role == "community_staff" and action.community_id in user.community_ids)
        or user.role == "district_admin"
    )
    if not visible:
        raise NotFound("No such action")
    return action


def household_actions(household_id: str, *, status: str | None, limit: int, cursor) -> list[Action]:
    """A household's actions, newest first (limit + 1 rows for paging)."""
    query = select(Action).where(Action.household_id == household_id)
    if status:
        query = query.where(Action.status == status)
    return page_rows(query, Action, limit, cursor)


def review_queue(staff: User, *, status: str, community_id: str | None, limit: int, cursor) -> list[Action]:
    """Actions of the staff member's communities in a status, oldest first (limit + 1 rows)."""
    communities = staff.community_ids
    if community_id is not None:
        communities = [c for c in communities if c == community_id]
    query = select(Action).where(Action.community_id.in_(communities), Action.status == status)
    return page_rows(query, Action, limit, cursor, oldest_first=True)


def reduction_totals(household_id: str) -> dict:
    """Grams of CO2e a household's approved actions reduced, and the verified part."""
    total, verified = db.session.execute(
        select(func.coalesce(func.sum(Action.reduction_g), 0),
               func.coalesce(func.sum(Action.reduction_g).filter(Action.verified.is_(True)), 0))
        .where(Action.household_id == household_id, Action.status == "approved")
    ).one()
    return {"reduction_g_total": int(total), "verified_reduction_g_total": int(verified)}


# ---------------------------------------------------------------- household cards


def household_card_png(household_id: str, user: User) -> bytes:
    """A printable household card: a QR code of the card number, with the number beneath it."""
    household = db.session.get(Household, household_id)
    visible = household is not None and (
        (user.role == "resident" and user.household_id == household.id)
        or (user.role == "community_staff" and household.community_id in user.community_ids)
        or user.role == "district_admin"
    )
    if not visible:
        raise NotFound("No such household")
    import qrcode
    from PIL import Image, ImageDraw, ImageFont

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(household.card_number)
    qr.make(fit=True)
    code = qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    card = Image.new("RGB", (code.width, code.height + 60), "white")
    card.paste(code, (0, 0))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=28)
    text = " ".join(household.card_number[i:i + 4] for i in range(0, len(household.card_number), 4))
    width = draw.textlength(text, font=font)
    draw.text(((card.width - width) / 2, code.height + 10), text, fill="black", font=font)
    out = io.BytesIO()
    card.save(out, format="PNG")
    return out.getvalue()
