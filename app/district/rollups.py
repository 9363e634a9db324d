"""Daily rollups and household-month presence, kept current with every approval and reversal.

`record_approved(action)` / `record_reversed(action)` are called by the activities service in the
transaction that approves or reverses. They only note the action; just before that transaction
commits, the notes are added up per rollup key and written with one upsert per table, keys in sorted
order. So the hot path costs no statement, and every writer locks rollup rows last, in one global
order, and only for the instant before its commit: rollup rows can neither deadlock nor serialise
approvals. A note made inside a savepoint that is rolled back is dropped with it.
"""
import functools
from collections import defaultdict

from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.orm import Session

from ..dialect import add_rows, adding_statement
from ..extensions import core, db, run
from ..localtime import local_date
from .models import DailyRollup, HouseholdMonth

_NOTES = "district_rollup_notes"


def record_approved(action) -> None:
    """Count an approved action into the rollups when its transaction commits. Does not commit."""
    _note(action, +1)


def record_reversed(action) -> None:
    """Take a reversed action out of the rollups, and off the next batch if it was batched. Does not commit."""
    from .batches import deduct_reversal

    _note(action, -1)
    deduct_reversal(action)


def _note(action, sign: int) -> None:
    session = db.session()
    chain = []
    transaction = session.get_nested_transaction()
    while transaction is not None and transaction.nested:
        chain.append(transaction)
        transaction = transaction.parent
    session.info.setdefault(_NOTES, []).append((tuple(chain), action, sign))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session, previous_transaction):
    notes = session.info.get(_NOTES)
    if not notes:
        return
    if previous_transaction.parent is None:
        session.info.pop(_NOTES, None)
    else:
        session.info[_NOTES] = [n for n in notes if previous_transaction not in n[0]]


@event.listens_for(Session, "after_commit")
def _forget(session):
    session.info.pop(_NOTES, None)


@event.listens_for(Session, "before_commit")
def _write_notes(session):
    notes = session.info.pop(_NOTES, None)
    if not notes:
        return
    session.flush()  # the actions' final values, and their row locks, before any rollup lock
    days, months = _deltas(notes)
    day_rows = [{**dict(zip(_DAY_KEYS, key)), "month": key[0].strftime("%Y-%m"), **dict(zip(_DAY_SUMS, value))}
                for key, value in sorted(days.items()) if any(value)]
    month_rows = [{**dict(zip(_MONTH_KEYS, key)), **dict(zip(_MONTH_SUMS, value))}
                  for key, value in sorted(months.items()) if any(value)]
    if len(day_rows) == 1 and len(month_rows) == 1 and session.get_bind().dialect.name == "postgresql":
        # One approval (the common case): both upserts in one statement, one round trip. Month rows are
        # only ever contended by transactions of their household, which its wallet lock serialises.
        run(session.connection(), _both_statement(), {**{f"d_{k}": v for k, v in day_rows[0].items()},
                                                      **{f"m_{k}": v for k, v in month_rows[0].items()}})
        return
    add_rows(session, DailyRollup.__table__, _DAY_KEYS, _DAY_SUMS, day_rows)
    add_rows(session, HouseholdMonth.__table__, _MONTH_KEYS, _MONTH_SUMS, month_rows)


_DAY_KEYS = ("day", "community_id", "action_type", "variant", "factor_set")
_DAY_SUMS = ("actions", "reduction_g", "verified_reduction_g", "points")
_MONTH_KEYS = ("month", "community_id", "action_type", "household_id")
_MONTH_SUMS = ("actions", "reduction_g", "verified_reduction_g")


def _deltas(notes):
    days = defaultdict(lambda: [0, 0, 0, 0])
    months = defaultdict(lambda: [0, 0, 0])
    for _, action, sign in notes:
        day = local_date(action.occurred_at)
        key = (day, action.community_id, action.action_type, action.variant or "", action.factor.factor_set.code)
        grams = sign * action.reduction_g
        counted = (sign, grams, grams if action.verified else 0)  # actions, reduction_g, verified_reduction_g
        days[key] = [total + delta for total, delta in zip(days[key], (*counted, sign * action.points))]
        month = (day.strftime("%Y-%m"), action.community_id, action.action_type, action.household_id)
        months[month] = [total + delta for total, delta in zip(months[month], counted)]
    return days, months


@functools.cache
def _both_statement():
    """PostgreSQL: the day's upsert as a data-modifying WITH, then the month's; built once."""
    days = adding_statement("postgresql", DailyRollup.__table__, _DAY_KEYS, _DAY_SUMS, prefix="d_").cte("days")
    return adding_statement("postgresql", HouseholdMonth.__table__, _MONTH_KEYS, _MONTH_SUMS, prefix="m_").add_cte(days)


_MONTHS = HouseholdMonth.__table__.c
# A household's reductions (by `household_id`), labelled by their reply fields: its month rows added up.
REDUCTION_COLUMNS = tuple(
    func.coalesce(select(func.sum(column)).where(_MONTHS.household_id == bindparam("household_id"))
                  .scalar_subquery(), 0).label(label)
    for column, label in ((_MONTHS.reduction_g, "reduction_g_total"),
                          (_MONTHS.verified_reduction_g, "verified_reduction_g_total"))
)
_HOUSEHOLD_REDUCTIONS = select(*REDUCTION_COLUMNS)


def household_reductions(household_id: str) -> dict:
    """Grams of CO2e a household's approved actions reduced, and the verified part (reduction_g_total,
    verified_reduction_g_total): its month rows added up (the notes of the open transaction are not
    in them yet). `GET /wallet` reads REDUCTION_COLUMNS in the wallet's own statement instead."""
    row = core(_HOUSEHOLD_REDUCTIONS, {"household_id": household_id}).one()
    return {key: int(value) for key, value in row._mapping.items()}


# ---------------------------------------------------------------- rebuild


def rebuild() -> tuple[int, int]:
    """Recompute both rollups from the approved actions (set-based). Does not commit.

    For recovery and for data loaded around the service; the day is the Asia/Shanghai date
    (UTC+8, no daylight saving since 1991).
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        day = "(a.occurred_at + interval '8 hours')::date"
        month = "to_char(a.occurred_at + interval '8 hours', 'YYYY-MM')"
    else:
        day = "date(a.occurred_at, '+8 hours')"
        month = "strftime('%Y-%m', a.occurred_at, '+8 hours')"
    db.session.execute(text("DELETE FROM district_daily_rollups"))
    db.session.execute(text("DELETE FROM district_household_months"))
    db.session.execute(text(f"""
        INSERT INTO district_daily_rollups (day, community_id, action_type, variant, factor_set, month,
                                            actions, reduction_g, verified_reduction_g, points)
        SELECT {day}, a.community_id, a.action_type, COALESCE(a.variant, ''), fs.code, {month},
               COUNT(*), SUM(a.reduction_g), SUM(CASE WHEN a.verified THEN a.reduction_g ELSE 0 END), SUM(a.points)
        FROM actions a JOIN factor_rows fr ON fr.id = a.factor_id JOIN factor_sets fs ON fs.id = fr.factor_set_id
        WHERE a.status = 'approved'
        GROUP BY {day}, a.community_id, a.action_type, COALESCE(a.variant, ''), fs.code, {month}
    """))
    db.session.execute(text(f"""
        INSERT INTO district_household_months (month, community_id, action_type, household_id, actions,
                                               reduction_g, verified_reduction_g)
        SELECT {month}, a.community_id, a.action_type, a.household_id, COUNT(*),
               SUM(a.reduction_g), SUM(CASE WHEN a.verified THEN a.reduction_g ELSE 0 END)
        FROM actions a WHERE a.status = 'approved'
        GROUP BY {month}, a.community_id, a.action_type, a.household_id
    """))
    counts = [db.session.scalar(select(db.func.count()).select_from(m)) for m in (DailyRollup, HouseholdMonth)]
    return counts[0], counts[1]
