"""Approval, rejection, reversal and appeals of actions, with the caps they count against.

Approval is where later capabilities hook in: `_credit` values the action,
moves its points through the ledger and freezes its receipt, all in the
caller's transaction. Nothing here commits.
"""
import functools
from decimal import Decimal

from sqlalchemy import BigInteger, String, and_, bindparam, case, select, update

from ..accounts.models import User
from ..campaigns import service as campaigns
from ..district import rollups
from ..columns import utcnow
from ..dialect import dialect_insert_for, dialect_name
from ..errors import AppError, Conflict, InvalidState, NotFound
from ..extensions import core, db
from ..ledger import service as ledger
from ..ledger.kinds import EntryKind
from ..rows import write_new
from ..localtime import local_date
from . import valuation
from .factors import row_in_force
from .models import Action, CapUsage, FactorRow
from .valuation import CapPeriod, Valuation, milli


class AlreadyAppealed(AppError):
    status, code, title = 409, "already_appealed", "This action was already appealed once"


HELD_OVER_CAP = "exceeds_cap"


# ---------------------------------------------------------------- approval


def approve(action: Action, *, approver_id: str | None, third_party: bool, row: FactorRow | None = None) -> None:
    """Approve an action: credit what the caps still allow (possibly 0), and freeze the receipt.

    `third_party`: approved on the word of community staff, a device or an operator import, so the
    grams count as verified when the factor row is verifiable; a self-approvable report is not.
    `row`: the row in force for the action, when the caller has just resolved it (else it is looked up).
    """
    row, periods = _lock_for_valuation(action, row)
    valued = _charge_caps(action.household_id, row, periods, action.quantity)
    _credit(action, row, valued, approver_id=approver_id, third_party=third_party)


def approve_unless_capped(action: Action, *, approver_id: str | None, row: FactorRow | None = None) -> None:
    """A device or import record: approve it whole, or hold it pending for review when a cap would cut it."""
    row, periods = _lock_for_valuation(action, row)
    valued = _charge_caps(action.household_id, row, periods, action.quantity, whole_only=True)
    if valued is None:
        action.review_reason = HELD_OVER_CAP
        return
    _credit(action, row, valued, approver_id=approver_id, third_party=True)


def _lock_for_valuation(action: Action, row: FactorRow | None) -> tuple[FactorRow, list[CapPeriod]]:
    # The wallet and its issuance shard first, as integration batches lock them: one lock order, no deadlock.
    # The wallet lock also serialises every change of this household's cap usage.
    ledger.lock_households([action.household_id])
    row = row or valuation_row(action)
    return row, valuation.cap_periods(action.occurred_at, row.daily_cap, row.monthly_cap)


def _credit(action: Action, row: FactorRow, valued: Valuation, *, approver_id: str | None,
            third_party: bool) -> None:
    now = utcnow()
    action.factor_id, action.factor = row.id, row
    action.status = "approved"
    action.credited_quantity = valued.credited
    action.reduction_g, action.base_points = valued.reduction_g, valued.base_points
    action.campaign_points, action.points = 0, valued.base_points
    action.verified = bool(row.verifiable and third_party)
    action.approved_by, action.approved_at = approver_id, now
    action.receipt = valuation.receipt_json(valuation.receipt(
        row=row, quantity=action.quantity, valuation=valued, verified=action.verified, source=action.source,
        approver_id=approver_id, approved_at=now,
    ))
    if action.base_points:
        ledger.award(action.household_id, action.base_points, kind=EntryKind.ACTION, ref_type="action",
                     ref_id=action.id, actor_id=approver_id)
    write_new(action)  # a new action is written here, approved (campaign awards refer to it)
    # Campaign parts, paid from their budgets: they set campaign_points, points and the receipt's campaigns.
    campaigns.apply_campaigns(action)
    rollups.record_approved(action)  # district rollups, written once just before the commit


def valuation_row(action: Action) -> FactorRow:
    """The row in force on occurred_at now; the recorded row if a later set dropped the type or unit."""
    newer = row_in_force(action.action_type, action.variant, action.unit, local_date(action.occurred_at),
                         unless_set=action.factor.factor_set_id)
    return newer or action.factor


# ---------------------------------------------------------------- caps
#
# A household's usage rows are written only by a transaction holding its wallet lock (approvals and
# reversals take it first), and each statement below also locks the rows it touches. An approval whose
# quantity fits every cap costs one statement: an upsert that adds the whole quantity where it still
# fits, returning the rows it changed. Only when a cap cuts the quantity are the rows read and set.


@functools.cache
def _usage_statements(dialect: str, count: int) -> dict:
    """The pre-built cap statements for `count` periods (1 or 2) on a dialect."""
    table = CapUsage.__table__
    c = table.c
    insert = dialect_insert_for(dialect, table)
    period = [bindparam(f"period{i}", type_=String) for i in range(count)]
    cap = [bindparam(f"cap{i}", type_=BigInteger) for i in range(count)]
    delta = [bindparam(f"delta{i}", type_=BigInteger) for i in range(count)]
    household, factor = bindparam("household", type_=String), bindparam("factor", type_=String)
    rows = [{"household_id": household, "factor_id": factor, "period": period[i],
             "used_milli": bindparam("add", type_=BigInteger)} for i in range(count)]
    cap_of = case(*[(c.period == period[i], cap[i]) for i in range(count)])
    mine = and_(c.household_id == household, c.factor_id == factor)
    delta_of = case(*[(c.period == period[i], delta[i]) for i in range(count)])
    # One row is a plain VALUES, which SQLAlchemy's cache compiles once; several rows it compiles on each
    # use, except on PostgreSQL's driver path (app/driver.py), which keeps either compiled.
    rows = rows[0] if count == 1 else rows
    return {
        # Add `add` to every row where it still fits its cap (a new row is made holding it); returns those rows.
        "add": insert.values(rows).on_conflict_do_update(
            index_elements=[c.household_id, c.factor_id, c.period],
            set_={"used_milli": c.used_milli + insert.excluded.used_milli},
            where=c.used_milli + insert.excluded.used_milli <= cap_of,
        ).returning(c.period, c.used_milli),
        # Make missing rows (at 0) and lock and read every row.
        "read": insert.values(rows).on_conflict_do_update(
            index_elements=[c.household_id, c.factor_id, c.period], set_={"used_milli": c.used_milli},
        ).returning(c.period, c.used_milli),
        # Move each row by its delta, guarded so it stays within [0, cap].
        "move": update(table).where(
            mine, c.period.in_(period), c.used_milli + delta_of >= 0, c.used_milli + delta_of <= cap_of,
        ).values(used_milli=c.used_milli + delta_of),
    }


def _usage(count: int) -> dict:
    return _usage_statements(dialect_name(), count)


def _period_params(household_id: str, factor_id: str, periods: list[CapPeriod], **per_period) -> dict:
    params = {"household": household_id, "factor": factor_id}
    for i, period in enumerate(periods):
        params[f"period{i}"], params[f"cap{i}"] = period.key, period.cap_milli
        for name, values in per_period.items():
            params[f"{name}{i}"] = values[period.key]
    return params


def _charge_caps(household_id: str, row: FactorRow, periods: list[CapPeriod], quantity: Decimal, *,
                 whole_only: bool = False) -> Valuation | None:
    """Value the action against the caps and count what it is credited into them.

    `whole_only`: count nothing and return None when a cap would cut the quantity. The caller holds
    the household's wallet lock.
    """
    value = lambda used: valuation.value(quantity, row.kgco2e_per_unit, row.points_per_unit, periods, used)  # noqa: E731
    if not periods:
        return value({})
    periods = sorted(periods, key=lambda p: p.key)  # the rows' lock order
    wanted = milli(quantity)
    statements = _usage(len(periods))
    params = _period_params(household_id, row.id, periods)
    added: dict[str, int] = {}
    if all(wanted <= period.cap_milli for period in periods):
        added = {period: used - wanted for period, used in
                 core(statements["add"], {**params, "add": wanted}).all()}
        if len(added) == len(periods):
            return value(added)  # fits every cap: counted whole
    # A cap cuts it: read every row (locked), then set each to what is actually credited.
    used = {period: used for period, used in core(statements["read"], {**params, "add": 0}).all()}
    used.update(added)  # what those rows held before this approval added to them
    valued = value(used)
    held = whole_only and valued.cut_by_caps(quantity)
    credit = 0 if held else valued.credited_milli
    deltas = {p.key: credit - (wanted if p.key in added else 0) for p in periods}
    if any(deltas.values()):
        _move_usage(household_id, row.id, periods, deltas)
    return None if held else valued


def _move_usage(household_id: str, factor_id: str, periods: list[CapPeriod], deltas: dict[str, int]) -> None:
    """Move each usage row by its delta (one statement), guarded so it stays within [0, cap]."""
    changed = core(_usage(len(periods))["move"],
                   _period_params(household_id, factor_id, periods, delta=deltas)).rowcount
    if changed != len(periods):
        raise Conflict("The household's cap usage changed concurrently; retry")


def _release_caps(action: Action) -> None:
    """Give back the cap allowance a reversed action used."""
    row = action.factor
    periods = sorted(valuation.cap_periods(action.occurred_at, row.daily_cap, row.monthly_cap), key=lambda p: p.key)
    credited_milli = valuation.milli(action.credited_quantity or Decimal(0))
    if not periods or credited_milli == 0:
        return
    _move_usage(action.household_id, row.id, periods, {p.key: -credited_milli for p in periods})


# ---------------------------------------------------------------- staff decisions and appeals


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
    approve(action, approver_id=staff.id, third_party=True)
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
        ledger.take_back(action.household_id, action.base_points, kind=EntryKind.ACTION_REVERSAL, ref_type="action",
                         ref_id=action.id, actor_id=staff.id, reason=reason.strip())
    action.status, action.reversal_reason = "reversed", reason.strip()
    action.reversed_by, action.reversed_at = staff.id, utcnow()
    db.session.flush()
    rollups.record_reversed(action)
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
