"""District exports: aggregated reductions from the daily rollups, small cells folded, streamed to a file.

`create_export` stages the job; `build` (the job "district.build_export") writes the file under
EXPORT_DIR row by row from a server-side cursor, so memory does not grow with the data, then records
the row count and the SHA-256 of the file's bytes. Files are kept 30 days (`flask exports sweep`).

Households: distinct households with approved actions in a cell. Whole months of the period are
counted from the household-month rollup; the partial months at its edges from the actions of
those days only (indexed by occurred_at), so the count is exact for any period.
"""
import csv
import hashlib
import json
import logging
import os
from datetime import date, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import String, and_, distinct, func, literal, or_, select, union_all
from sqlalchemy.orm import aliased

from .. import jobs
from ..accounts.models import Community, Street
from ..activities.models import Action
from ..columns import new_id, utcnow
from ..errors import AppError, InvalidState, NotFound
from ..extensions import db
from ..localtime import day_start
from ..redis_client import redis_client
from ..replica import read_session
from .models import DailyRollup, Export, HouseholdMonth

log = logging.getLogger("app.district.exports")

JOB = "district.build_export"
GROUP_KEYS = ("street", "community", "action_type", "month")
MEASURES = ("actions", "households", "reduction_g", "verified_reduction_g", "points")
FORMATS = ("csv", "json", "xlsx")
MIN_HOUSEHOLDS = 5
KEEP_DAYS = 30
OTHER = "other"
SUPPRESSION_RULE = (f"A row with fewer than {MIN_HOUSEHOLDS} households is folded into one row whose grouping "
                    f"columns read '{OTHER}'; while that row has fewer than {MIN_HOUSEHOLDS} distinct households "
                    f"the next-smallest row is folded in too. If the whole export has fewer than "
                    f"{MIN_HOUSEHOLDS} households, no row is written.")
MIMETYPES = {"csv": "text/csv", "json": "application/json",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
YIELD_PER = 2000


class ExportExpired(AppError):
    status, code, title = 410, "export_expired", "This export's file was removed after 30 days"


# ---------------------------------------------------------------- requests and replies


def create_export(user, data: dict) -> Export:
    """Stage an export and its job; the job runs after the commit. Does not commit."""
    export = Export(
        id=new_id(), created_by=user.id, period_from=data["period_from"], period_to=data["period_to"],
        group_by=",".join(data["group_by"]), format=data["format"], status="queued",
        expires_at=utcnow() + timedelta(days=KEEP_DAYS),
    )
    export.job_id = jobs.enqueue(JOB, export_id=export.id).id
    db.session.add(export)
    db.session.flush()
    return export


def get_export(export_id: str) -> Export:
    export = db.session.get(Export, export_id) if len(export_id) <= 32 else None
    if export is None:
        raise NotFound("No such export")
    return export


def recent(limit: int = 20) -> list[Export]:
    """The latest exports of the district, newest first."""
    return db.session.scalars(select(Export).order_by(Export.created_at.desc(), Export.id.desc()).limit(limit)).all()


def status_of(export: Export) -> str:
    if export.status in ("done", "expired"):
        return export.status
    state = db.session.scalar(select(jobs.Job.state).where(jobs.Job.id == export.job_id))
    return {"running": "running", "failed": "failed"}.get(state, "queued")


def export_view(export: Export) -> dict:
    status = status_of(export)
    progress = {"done": 100, "expired": 100}.get(status, 0)
    if status == "running":
        progress = _read_progress(export.id)
    return {
        "id": export.id, "status": status, "progress": progress, "row_count": export.row_count,
        "checksum_sha256": export.checksum_sha256, "size_bytes": export.size_bytes,
        "download_url": f"/api/v1/exports/{export.id}/download" if status == "done" else None,
        "format": export.format, "period_from": export.period_from, "period_to": export.period_to,
        "group_by": export.group_by.split(","), "metadata": json.loads(export.meta) if export.meta else None,
        "created_at": export.created_at, "finished_at": export.finished_at, "expires_at": export.expires_at,
    }


def download(export: Export) -> tuple[Path, str, str]:
    """(path, mimetype, file name) of a finished export's file."""
    status = status_of(export)
    if status == "expired":
        raise ExportExpired()
    if status != "done":
        raise InvalidState(f"The export is {status}; download it once its status is done")
    path = export_dir() / export.file_name
    if not path.is_file():
        raise ExportExpired("The export's file is no longer on this server")
    name = f"songjiang-{export.period_from}-{export.period_to}-{export.group_by.replace(',', '-')}.{export.format}"
    return path, MIMETYPES[export.format], name


def export_dir() -> Path:
    return Path(current_app.config["EXPORT_DIR"])


# ---------------------------------------------------------------- progress (a side channel while running)


_redis_client = redis_client


def _progress_key(export_id: str) -> str:
    return f"{current_app.config.get('RATELIMIT_KEY_PREFIX', 'sjc')}:export-progress:{export_id}"


def _write_progress(export_id: str, percent: int) -> None:
    """Progress lives in Redis (the job's transaction commits only at its end); without Redis jobs run inline."""
    client = _redis_client()
    if client is None:
        return
    try:
        client.set(_progress_key(export_id), int(percent), ex=86400)
    except Exception:  # progress is a courtesy: never fail an export over it
        log.warning("could not record export progress")


def _read_progress(export_id: str) -> int:
    client = _redis_client()
    if client is None:
        return 0
    try:
        value = client.get(_progress_key(export_id))
        return int(value) if value is not None else 0
    except Exception:
        return 0


# ---------------------------------------------------------------- the aggregation


def month_parts(period_from: date, period_to: date):
    """(whole months as ("YYYY-MM", "YYYY-MM") or None, [(month, first day, last day) of partial months])."""
    whole, partial = [], []
    month = date(period_from.year, period_from.month, 1)
    while month <= period_to:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        first, last = max(month, period_from), min(following - timedelta(days=1), period_to)
        label = month.strftime("%Y-%m")
        if first == month and last == following - timedelta(days=1):
            whole.append(label)
        else:
            partial.append((label, first, last))
        month = following
    return ((whole[0], whole[-1]) if whole else None), partial


def household_source(period_from: date, period_to: date):
    """(community_id, action_type, month, household_id) of every approved action's household in the period."""
    whole, partial = month_parts(period_from, period_to)
    parts = []
    if whole:
        parts.append(select(HouseholdMonth.community_id, HouseholdMonth.action_type, HouseholdMonth.month,
                            HouseholdMonth.household_id)
                     .where(HouseholdMonth.month >= whole[0], HouseholdMonth.month <= whole[1],
                            HouseholdMonth.actions > 0))
    for label, first, last in partial:
        parts.append(select(Action.community_id, Action.action_type, literal(label, String).label("month"),
                            Action.household_id)
                     .where(Action.status == "approved", Action.occurred_at >= day_start(first),
                            Action.occurred_at < day_start(last + timedelta(days=1))))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("household_source")


def _keyed(source, group_by):
    """(from clause, [key expressions]) for a source with community_id, action_type and month columns."""
    clause, keys = source, []
    if "street" in group_by:
        community = aliased(Community)
        clause = source.join(community, community.id == source.c.community_id)
    for key in group_by:
        keys.append({"street": lambda: community.street_id, "community": lambda: source.c.community_id,
                     "action_type": lambda: source.c.action_type, "month": lambda: source.c.month}[key]())
    return clause, keys


class Cells:
    """The cells of one period and grouping: sums from the daily rollups, households as described above."""

    def __init__(self, period_from: date, period_to: date, group_by: list[str], session=None):
        self.session = db.session if session is None else session
        self.group_by = list(group_by)
        self.n = len(group_by)
        rollup = select(DailyRollup).where(DailyRollup.day >= period_from, DailyRollup.day <= period_to).subquery("r")
        clause, keys = _keyed(rollup, group_by)
        self.sums = (
            select(*[k.label(f"k{i}") for i, k in enumerate(keys)],
                   func.sum(rollup.c.actions).label("actions"), func.sum(rollup.c.reduction_g).label("reduction_g"),
                   func.sum(rollup.c.verified_reduction_g).label("verified_reduction_g"),
                   func.sum(rollup.c.points).label("points"))
            .select_from(clause).group_by(*keys).having(func.sum(rollup.c.actions) > 0)
        ).subquery("sums")
        self.source = household_source(period_from, period_to)
        clause, keys = _keyed(self.source, group_by)
        self.pairs = select(*[k.label(f"k{i}") for i, k in enumerate(keys)],
                            self.source.c.household_id).select_from(clause).subquery("pairs")
        self.households = (
            select(*[self.pairs.c[f"k{i}"] for i in range(self.n)],
                   func.count(distinct(self.pairs.c.household_id)).label("households"))
            .group_by(*[self.pairs.c[f"k{i}"] for i in range(self.n)])
        ).subquery("hh")
        self.factor_sets = sorted(self.session.scalars(
            select(DailyRollup.factor_set).distinct()
            .where(DailyRollup.day >= period_from, DailyRollup.day <= period_to, DailyRollup.actions > 0)))

    def _match(self, a, b):
        return and_(*[a.c[f"k{i}"] == b.c[f"k{i}"] for i in range(self.n)])

    def _is(self, table, key: tuple):
        return and_(*[table.c[f"k{i}"] == value for i, value in enumerate(key)])

    def total_households(self) -> int:
        return int(self.session.scalar(select(func.count(distinct(self.source.c.household_id)))) or 0)

    def _union_households(self, condition) -> int:
        hh = self.households
        return int(self.session.scalar(
            select(func.count(distinct(self.pairs.c.household_id)))
            .select_from(self.pairs.join(hh, self._match(self.pairs, hh))).where(condition)) or 0)

    def folding(self) -> tuple[set, int | None, bool]:
        """(keys of the rows folded into `other`, its distinct households, withheld: everything is too small)."""
        hh = self.households
        keys = [hh.c[f"k{i}"] for i in range(self.n)]
        small = {tuple(r) for r in self.session.execute(select(*keys).where(hh.c.households < MIN_HOUSEHOLDS))}
        if not small:
            return set(), None, False
        condition = hh.c.households < MIN_HOUSEHOLDS
        union = self._union_households(condition)
        if union < MIN_HOUSEHOLDS:
            nearest = self.session.execute(
                select(*keys).where(hh.c.households >= MIN_HOUSEHOLDS)
                .order_by(hh.c.households, *keys).limit(1)).first()
            if nearest is None:
                return small, union, True
            small.add(tuple(nearest))
            union = self._union_households(or_(condition, self._is(hh, tuple(nearest))))
        return small, union, False

    def rows(self):
        """Every cell, ordered by the grouping keys: (key ids, labels, measures)."""
        s, hh = self.sums, self.households
        columns, clause, order = [], s.join(hh, self._match(s, hh)), []
        for i, key in enumerate(self.group_by):
            if key == "street":
                street = aliased(Street)
                clause = clause.join(street, street.id == s.c[f"k{i}"])
                columns.append(street.name)
                order += [street.position, street.id]
            elif key == "community":
                community = aliased(Community)
                clause = clause.join(community, community.id == s.c[f"k{i}"])
                columns.append(community.name)
                order += [community.position, community.id]
            else:
                columns.append(s.c[f"k{i}"])
                order.append(s.c[f"k{i}"])
        query = (select(*[s.c[f"k{i}"] for i in range(self.n)], *columns, s.c.actions, hh.c.households,
                        s.c.reduction_g, s.c.verified_reduction_g, s.c.points)
                 .select_from(clause).order_by(*order))
        result = self.session.execute(query, execution_options={"yield_per": YIELD_PER})
        for row in result:
            ids, labels = tuple(row[:self.n]), list(row[self.n:2 * self.n])
            measures = dict(zip(MEASURES, (int(v or 0) for v in row[2 * self.n:])))
            yield ids, labels, measures

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(self.sums)) or 0)


def suppressed_rows(cells: Cells, stats: dict):
    """The rows an export shows: small cells folded into `other` (last), totals kept."""
    folded, other_households, withheld = cells.folding()
    stats.update(folded_rows=len(folded), withheld=withheld)
    other = dict.fromkeys(MEASURES, 0)
    for ids, labels, measures in cells.rows():
        for name in ("actions", "reduction_g", "verified_reduction_g", "points"):
            stats[name] = stats.get(name, 0) + measures[name]
        if ids in folded:
            for name in MEASURES:
                other[name] += measures[name]
            continue
        yield labels + [measures[m] for m in MEASURES]
    if folded and not withheld:
        other["households"] = other_households
        yield [OTHER] * cells.n + [other[m] for m in MEASURES]


# ---------------------------------------------------------------- the job


def build_export_job(export_id: str) -> None:
    """Write an export's file; a second delivery finds it done and does nothing."""
    build(export_id)


def build(export_id: str) -> None:
    """Write the file and record its row count, checksum and metadata. Does not commit."""
    export = db.session.get(Export, export_id)
    if export is None or export.status != "queued":
        return
    with read_session() as reader:
        _build(export, Cells(export.period_from, export.period_to, export.group_by.split(","), reader))
    db.session.flush()
    _write_progress(export.id, 100)


def _build(export: Export, cells: Cells) -> None:
    """Write `export`'s file from `cells` and fill in its row count, checksum and metadata."""
    group_by = cells.group_by
    total = max(cells.count(), 1)
    stats: dict = {}
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{export.id}.{export.format}"
    partial = directory / f".{export.id}.{export.format}.part"
    header = group_by + list(MEASURES)
    metadata = {
        "title": "Songjiang District quantified reductions (grams CO2e)", "period_from": str(export.period_from),
        "period_to": str(export.period_to), "group_by": group_by, "columns": header,
        "factor_sets": cells.factor_sets, "suppression_rule": SUPPRESSION_RULE,
        "min_households": MIN_HOUSEHOLDS, "day_boundaries": "Asia/Shanghai",
    }

    def tracked(rows):
        for index, row in enumerate(rows, 1):
            if index % YIELD_PER == 0:
                _write_progress(export.id, min(95, 5 + 90 * index // total))
            yield row

    _write_progress(export.id, 5)
    try:
        rows = tracked(suppressed_rows(cells, stats))
        writer = {"csv": _write_csv, "json": _write_json, "xlsx": _write_xlsx}[export.format]
        metadata_final = lambda count: {**metadata, **_summary(stats, cells, count), "generated_at": utcnow().isoformat()}  # noqa: E731
        row_count, metadata = writer(partial, header, rows, metadata_final)
        os.replace(partial, final)
    finally:
        if partial.exists():
            partial.unlink()
    digest, size = _sha256(final)
    export.status, export.row_count, export.checksum_sha256, export.size_bytes = "done", row_count, digest, size
    export.file_name, export.meta, export.finished_at = final.name, json.dumps(metadata, ensure_ascii=False), utcnow()


def _summary(stats: dict, cells: Cells, row_count: int) -> dict:
    withheld = stats.get("withheld", False)
    summary = {"row_count": row_count, "folded_rows": stats.get("folded_rows", 0), "withheld": withheld}
    if not withheld:
        summary["totals"] = {"actions": stats.get("actions", 0), "households": cells.total_households(),
                             "reduction_g": stats.get("reduction_g", 0),
                             "verified_reduction_g": stats.get("verified_reduction_g", 0),
                             "points": stats.get("points", 0)}
    return summary


def _write_csv(path: Path, header, rows, metadata_final):
    count = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count, metadata_final(count)


def _write_json(path: Path, header, rows, metadata_final):
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"rows": [')
        for row in rows:
            handle.write((",\n" if count else "\n") + json.dumps(dict(zip(header, row)), ensure_ascii=False))
            count += 1
        metadata = metadata_final(count)
        handle.write('\n], "metadata": ' + json.dumps(metadata, ensure_ascii=False) + "}\n")
    return count, metadata


def _write_xlsx(path: Path, header, rows, metadata_final):
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("export")
    sheet.append(header)
    count = 0
    for row in rows:
        sheet.append(row)
        count += 1
    metadata = metadata_final(count)
    meta_sheet = workbook.create_sheet("metadata")
    meta_sheet.append(["key", "value"])
    for key, value in metadata.items():
        meta_sheet.append([key, value if isinstance(value, (str, int)) and not isinstance(value, bool)
                           else json.dumps(value, ensure_ascii=False)])
    with open(path, "wb") as handle:
        workbook.save(handle)
    return count, metadata


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# ---------------------------------------------------------------- retention


def sweep(now=None) -> int:
    """Remove the files of exports past their 30 days; the rows stay, marked expired. Does not commit."""
    now = now or utcnow()
    expired = db.session.scalars(
        select(Export).where(Export.expires_at <= now, Export.status == "done").with_for_update()).all()
    for export in expired:
        if export.file_name:
            try:
                (export_dir() / export.file_name).unlink()
            except FileNotFoundError:
                pass
        export.status, export.file_name = "expired", None
    db.session.flush()
    return len(expired)
