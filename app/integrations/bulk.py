"""Pushed records, a batch at a time: set-based, a fixed number of statements for any batch size.

The outcome of every record is the one the one-by-one path (`service._ingest_records_one_by_one`:
`activities.record_action` per record, in external_id order) gives: the same statuses and error
messages, duplicates (earlier batches, earlier in this batch, a concurrent batch), the anomaly
rule against the household's last approved quantities (approvals earlier in the batch included),
caps counted in that order, the same valuation, ledger chains and campaign parts (one issuance shard
pays the batch, where one by one each household's would: issuance is one account kept in shards).
What changes is how it is written:

1. validate: parse each record, find the factor rows in force (two queries for the batch; a record
   that fails is checked again by `record_action` itself, so its errors are word for word the same);
2. lock, in one pass each, in the one-by-one path's order: wallets and the batch's issuance shard
   (created if missing, one statement), then read which external ids were received; then the cap
   usage rows (one locking query) and the anomaly history (one query); only then the accounts of the
   campaigns that may count its records' kinds, which every batch paying their parts waits for;
3. value in memory, in external_id order: the ledger journal and campaign parts, from state read
   once under those locks;
4. write with one statement per table: actions (a repeat stored concurrently is skipped, and the
   batch is valued again without it), cap usage, ledger entries, lots, accounts, campaign awards.

Does not commit.
"""
import functools
from datetime import timedelta

from sqlalchemy import String, and_, bindparam, delete, func, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from ..accounts.cards import normalise_card
from ..activities import bulk as approvals
from ..activities import service as activities
from ..activities.bulk import NewAction
from ..activities.factors import resolve_factor
from ..activities.models import RECORDER_OF_SOURCE, Action, FactorRow, FactorSet
from ..campaigns import service as campaigns
from ..campaigns.bulk import CampaignParts
from ..columns import new_id, utcnow
from ..dialect import dialect_name
from ..district import rollups
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..ledger import bulk as ledger_bulk
from ..localtime import local_date
from . import records as incoming
from .schemas import RecordIn

UNIT_MAX = 12  # actions.unit; a record may send up to 20 characters, and record_action refuses more than 12


def ingest_records(integration, records: list) -> list[dict]:
    """Record each raw record of an integration; one result per record, in input order.

    A record is created, a duplicate (its external_id was already received from this integration,
    earlier or earlier in the same batch), or rejected with errors naming its fields. Does not commit.
    """
    schema = RecordIn()
    parsed = [incoming.parse_record(raw, schema) for raw in records]
    households = incoming.households_by_card({data["household_card"] for _, data, _ in parsed if data})
    checked = _validate(integration, parsed, households)
    return _record(integration, parsed, households, checked, set())


def _record(integration, parsed, households, checked, concurrent: set[str]) -> list[dict]:
    household_ids = sorted(h.id for h in households.values())
    kinds = {(data["action_type"], data["variant"] or "") for _, data, _ in parsed if data}
    external_ids = {data["external_id"] for _, data, _ in parsed if data}
    # The issuance shard that pays this batch: another batch most likely takes another one.
    issuance_key = f"{integration.id}:{min(external_ids, default='')}"
    ledger_bulk.lock_households(household_ids, issuance_key)
    received = incoming.received_external_ids(integration.id, external_ids) | concurrent

    now = utcnow()
    results: list[dict | None] = [None] * len(parsed)
    new: list[tuple[int, NewAction]] = []
    for index in sorted(range(len(parsed)), key=lambda i: (parsed[i][0] or "", i)):
        external_id, data, errors = parsed[index]
        if errors:
            results[index] = incoming.rejected(external_id, errors)
            continue
        household = households.get(normalise_card(data["household_card"]))
        if household is None:
            results[index] = incoming.rejected(external_id, {"household_card": ["No household has this card."]})
        elif external_id in received:
            results[index] = incoming.duplicate(external_id)
        elif isinstance(checked[index], dict):
            results[index] = incoming.rejected(external_id, checked[index])
        else:
            received.add(external_id)
            at = now + timedelta(microseconds=len(new))  # one moment per record, in the order they are recorded
            new.append((index, NewAction(
                id=new_id(), household_id=household.id, community_id=household.community_id,
                action_type=data["action_type"], variant=data["variant"] or None, quantity=data["quantity"],
                unit=data["unit"], occurred_at=data["occurred_at"], source=integration.source,
                factor=checked[index], integration_id=integration.id, external_id=external_id, created_at=at)))
    if not new:
        return results

    actions = [action for _, action in new]
    caps = approvals.CapBook(actions)
    history = _approved_history(actions)
    # The campaign accounts last, as one by one (wallet, caps, campaigns): every batch paying parts of a
    # campaign waits for the others on its one account, so nothing that does not need it is done under it.
    campaigns.lock_for_households(household_ids, kinds)
    parts = CampaignParts({h.community_id for h in households.values()}, household_ids, now, kinds)
    journal = ledger_bulk.Journal(household_ids, issuance_key, parts.account_ids)
    approved = []
    for action in actions:
        past = history.setdefault((action.household_id, action.action_type, action.variant or ""), [])
        if incoming.is_anomalous(action.quantity, action.factor.daily_cap, past[:incoming.ANOMALY_HISTORY]):
            action.review_reason = incoming.ANOMALOUS
        elif approvals.approve_unless_capped(action, caps, journal, parts):
            past.insert(0, action.quantity)
            approved.append(action)

    inserted = approvals.insert_actions(actions)
    if len(inserted) < len(actions):
        # A concurrent transaction stored some of these external ids first (the insert waited for its
        # commit): they are duplicates, and the batch is valued again without them.
        missed = {a.external_id for a in actions if a.id not in inserted}
        found = incoming.received_external_ids(integration.id, missed)
        if found != missed:
            raise Conflict("The batch's actions could not be stored; retry")
        if inserted:
            db.session.execute(delete(Action).where(Action.id.in_(inserted)))
        return _record(integration, parsed, households, checked, concurrent | found)
    caps.write()
    journal.write()
    parts.write()
    for action in approved:
        rollups.record_approved(action)  # district rollups, written once just before the commit
    for index, action in new:
        results[index] = {"external_id": action.external_id, "status": "created", "action_id": action.id}
    return results


# ---------------------------------------------------------------- validation


def _validate(integration, parsed, households) -> list:
    """For each record with a household: its factor row when record_action would accept it, else its errors."""
    recorder = RECORDER_OF_SOURCE[integration.source]
    checked: list = [None] * len(parsed)
    candidates = [(i, data, households.get(normalise_card(data["household_card"])))
                  for i, (_, data, errors) in enumerate(parsed) if data and not errors]
    candidates = [(i, data, household) for i, data, household in candidates if household is not None]
    rows = _FactorRows({local_date(data["occurred_at"]) for _, data, _ in candidates})
    now = utcnow()  # the batch's moment, as record_action's recorded_at
    for index, data, household in candidates:
        errors: dict[str, list[str]] = {}
        activities._check_quantity(data["quantity"], errors)
        activities._check_occurred_at(data["occurred_at"], errors, now)
        if len(data["unit"]) > UNIT_MAX:
            checked[index] = _errors_of_record_action(integration, household, data)
            continue
        if errors:
            checked[index] = errors
            continue
        row = rows.valid_row(data, recorder)
        if isinstance(row, dict):
            checked[index] = row
        elif data["unit"] in activities.WHOLE_UNITS and data["quantity"] != data["quantity"].to_integral_value():
            checked[index] = _errors_of_record_action(integration, household, data)
        else:
            checked[index] = row
    return checked


class _FactorRows:
    """The factor rows in force on the batch's days, read in two queries."""

    def __init__(self, days: set):
        self._set_of, self._rows, self._asked = {}, {}, {}
        if not days:
            return
        sets = db.session.scalars(
            select(FactorSet).where(FactorSet.status == "published", FactorSet.effective_from <= max(days))
            .order_by(FactorSet.effective_from.desc())).all()
        self._set_of = {day: next((s.id for s in sets if s.effective_from <= day), None) for day in days}
        ids = {set_id for set_id in self._set_of.values() if set_id}
        if ids:
            self._rows = {(r.factor_set_id, r.action_type, r.variant): r
                          for r in db.session.scalars(select(FactorRow).where(FactorRow.factor_set_id.in_(ids)))}

    def valid_row(self, data: dict, recorder: str) -> FactorRow | dict:
        """The row `resolve_factor` would return, or the errors it gives (asked of it, once per kind of miss)."""
        occurred_at, unit = data["occurred_at"], data["unit"]
        day = local_date(occurred_at)
        row = self._rows.get((self._set_of.get(day), data["action_type"], data["variant"] or ""))
        if row is not None and row.unit == unit and recorder in row.source_list:
            return row
        key = (day, data["action_type"], data["variant"], unit)
        if key not in self._asked:
            errors: dict[str, list[str]] = {}
            found = resolve_factor(data["action_type"], data["variant"], unit, occurred_at, recorder, errors)
            self._asked[key] = found if found is not None else errors
        return self._asked[key]


def _errors_of_record_action(integration, household, data) -> dict:
    """The errors record_action gives a record it refuses (before writing anything)."""
    try:
        with db.session.begin_nested():
            activities.record_action(
                household_id=household.id, resident_id=None, action_type=data["action_type"],
                variant=data["variant"], quantity=data["quantity"], unit=data["unit"],
                occurred_at=data["occurred_at"], source=integration.source, actor_id=None,
                integration_id=integration.id, external_id=data["external_id"], review_reason="batch check",
            )
            raise _Accepted()
    except ValidationFailed as exc:
        return exc.extra.get("errors") or {"_schema": [exc.detail]}
    except _Accepted:
        raise RuntimeError("record_action accepted a record the batch check refused") from None


class _Accepted(Exception):
    """record_action took a record the batch check refused: its savepoint is rolled back."""


# ---------------------------------------------------------------- the anomaly rule's history


def _approved_history(actions: list[NewAction]) -> dict[tuple, list]:
    """(household, action type, variant or "") → its last approved quantities, newest first, in one query.

    Reads about ANOMALY_HISTORY rows per key, however long a household's history: on PostgreSQL one
    LATERAL backward index scan per key (30 ms for 500 keys over 1,000 approvals each, against 1.2 s
    for a window over them all), each key's quantities sent as one array (a batch's 10,000 rows
    through the driver and the result cost ≈ 10 ms of Python); SQLite (small, embedded) ranks the
    keys' rows in a window.
    """
    keys = sorted({(a.household_id, a.action_type, a.variant or "") for a in actions})
    if dialect_name() == "postgresql":
        rows = db.session.execute(_latest_per_key(), {
            "households": [k[0] for k in keys], "types": [k[1] for k in keys], "variants": [k[2] for k in keys]})
    else:
        rows = ((*key, [quantity]) for *key, quantity in db.session.execute(_ranked_per_key(keys)))
    history: dict[tuple, list] = {}
    for household_id, action_type, variant_, quantities in rows:
        history.setdefault((household_id, action_type, variant_), []).extend(quantities)
    return history


@functools.cache
def _latest_per_key():
    """PostgreSQL: for each (household, type, variant) of three zipped arrays, its last approved
    quantities, newest first, as one array (keys without any are left out)."""
    key = (func.unnest(bindparam("households", type_=ARRAY(String)), bindparam("types", type_=ARRAY(String)),
                       bindparam("variants", type_=ARRAY(String)))
           .table_valued("household_id", "action_type", "variant").render_derived("k"))
    latest = (
        select(Action.quantity, Action.approved_at, Action.id)
        .where(Action.household_id == key.c.household_id, Action.action_type == key.c.action_type,
               Action.status == "approved",
               # coalesce(variant, '') = k.variant, spelt so that the planner estimates it as the column's
               # equality and walks the index newest first (a default estimate made it read every row)
               or_(Action.variant == key.c.variant,
                   and_(key.c.variant == "", func.coalesce(Action.variant, "") == "")))
        .order_by(Action.approved_at.desc(), Action.id.desc())
        .limit(incoming.ANOMALY_HISTORY)
        .lateral("latest")
    )
    quantities = func.array_agg(aggregate_order_by(latest.c.quantity, latest.c.approved_at.desc(), latest.c.id.desc()),
                                type_=ARRAY(Action.quantity.type))
    return (
        select(key.c.household_id, key.c.action_type, key.c.variant, quantities)
        .select_from(key.join(latest, true()))
        .group_by(key.c.household_id, key.c.action_type, key.c.variant)
    )


def _ranked_per_key(keys: list[tuple]):
    """SQLite: the keys' households' approved rows ranked newest first per key, the first ANOMALY_HISTORY."""
    variant = func.coalesce(Action.variant, "")
    rank = func.row_number().over(
        partition_by=(Action.household_id, Action.action_type, variant),
        order_by=(Action.approved_at.desc(), Action.id.desc()),
    ).label("rank")
    ranked = (
        select(Action.household_id, Action.action_type, variant.label("variant"), Action.quantity, rank)
        .where(Action.household_id.in_({k[0] for k in keys}), Action.action_type.in_({k[1] for k in keys}),
               Action.status == "approved")
        .subquery()
    )
    return (select(ranked.c.household_id, ranked.c.action_type, ranked.c.variant, ranked.c.quantity)
            .where(ranked.c.rank <= incoming.ANOMALY_HISTORY)
            .order_by(ranked.c.household_id, ranked.c.action_type, ranked.c.variant, ranked.c.rank))
