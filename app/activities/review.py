"""Approval, rejection, reversal and appeals of actions, with the caps they count against.

Approval is where later capabilities hook in: `_credit` values the action,
moves its points through the ledger and freezes its receipt, all in the
caller's transaction. Nothing here commits.
"""
from decimal import Decimal

from sqlalchemy import select, update

from ..accounts.models import User
from ..campaigns import service as campaigns
from ..district import rollups
from ..columns import utcnow
from ..dialect import insert_ignoring_conflicts
from ..errors import AppError, Conflict, InvalidState, NotFound
from ..extensions import db
from ..ledger import service as ledger
from ..ledger.kinds import EntryKind
from ..localtime import local_date
from . import valuation
from .factors import set_in_force
from .models import Action, CapUsage, FactorRow
from .valuation import CapPeriod, Valuation


class AlreadyAppealed(AppError):
    status, code, title = 409, "already_appealed", "This action was already appealed once"


HELD_OVER_CAP = "exceeds_cap"


# ---------------------------------------------------------------- approval


def approve(action: Action, *, approver_id: str | None, third_party: bool) -> None:
    """Approve an action: credit what the caps still allow (possibly 0), and freeze the receipt.

    `third_party`: approved on the word of community staff, a device or an operator import, so the
    grams count as verified when the factor row is verifiable; a self-approvable report is not.
    """
    row, periods, used = _lock_for_valuation(action)
    _credit(action, row, periods, used, approver_id=approver_id, third_party=third_party)


def approve_unless_capped(action: Action, *, approver_id: str | None) -> None:
    """A device or import record: approve it whole, or hold it pending for review when a cap would cut it."""
    row, periods, used = _lock_for_valuation(action)
    preview = valuation.value(action.quantity, row.kgco2e_per_unit, row.points_per_unit, periods, used)
    if preview.cut_by_caps(action.quantity):
        action.review_reason = HELD_OVER_CAP
        return
    _credit(action, row, periods, used, approver_id=approver_id, third_party=True, valued=preview)


def _lock_for_valuation(action: Action) -> tuple[FactorRow, list[CapPeriod], dict[str, int]]:
    # The wallet and its issuance shard first, as integration batches lock them: one lock order, no deadlock.
    ledger.lock_households([action.household_id])
    row = valuation_row(action)
    periods = valuation.cap_periods(action.occurred_at, row.daily_cap, row.monthly_cap)
    return row, periods, _lock_cap_usage(action.household_id, row.id, [p.key for p in periods])


def _credit(action: Action, row: FactorRow, periods: list[CapPeriod], used: dict[str, int], *,
            approver_id: str | None, third_party: bool, valued: Valuation | None = None) -> None:
    valued = valued or valuation.value(action.quantity, row.kgco2e_per_unit, row.points_per_unit, periods, used)
    for period in periods:
        _change_cap_usage(action.household_id, row.id, period, valued.credited_milli)
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
    db.session.flush()
    if action.base_points:
        ledger.award(action.household_id, action.base_points, kind=EntryKind.ACTION, ref_type="action",
                     ref_id=action.id, actor_id=approver_id)
    # Campaign parts, paid from their budgets: they set campaign_points, points and the receipt's campaigns.
    campaigns.apply_campaigns(action)
    rollups.record_approved(action)  # district rollups, written once just before the commit


def valuation_row(action: Action) -> FactorRow:
    """The row in force on occurred_at now; the recorded row if a later set dropped the type or unit."""
    factor_set = set_in_force(local_date(action.occurred_at))
    if factor_set is not None and factor_set.id != action.factor.factor_set_id:
        for row in factor_set.rows:
            if (row.action_type, row.variant, row.unit) == (action.action_type, action.variant or "", action.unit):
                return row
    return action.factor


# ---------------------------------------------------------------- caps


def _lock_cap_usage(household_id: str, factor_id: str, periods: list[str]) -> dict[str, int]:
    """Create the usage rows if missing and lock them (fixed order); returns period → used thousandths."""
    if not periods:
        return {}
    db.session.execute(
        insert_ignoring_conflicts(CapUsage)
        .values([{"household_id": household_id, "factor_id": factor_id, "period": p, "used_milli": 0}
                 for p in sorted(periods)])
    )
    rows = db.session.execute(
        select(CapUsage.period, CapUsage.used_milli)
        .where(CapUsage.household_id == household_id, CapUsage.factor_id == factor_id,
               CapUsage.period.in_(periods))
        .order_by(CapUsage.period).with_for_update()
    ).all()
    return {period: used for period, used in rows}


def _change_cap_usage(household_id: str, factor_id: str, period: CapPeriod, delta: int) -> None:
    """Add `delta` thousandths to a locked usage row, guarded so it stays within [0, cap]."""
    if delta == 0:
        return
    guard = (CapUsage.used_milli + delta <= period.cap_milli) if delta > 0 else (CapUsage.used_milli + delta >= 0)
    changed = db.session.execute(
        update(CapUsage)
        .where(CapUsage.household_id == household_id, CapUsage.factor_id == factor_id,
               CapUsage.period == period.key, guard)
        .values(used_milli=CapUsage.used_milli + delta)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise Conflict("The household's cap usage changed concurrently; retry")


def _release_caps(action: Action) -> None:
    """Give back the cap allowance a reversed action used."""
    row = action.factor
    periods = valuation.cap_periods(action.occurred_at, row.daily_cap, row.monthly_cap)
    credited_milli = valuation.milli(action.credited_quantity or Decimal(0))
    if not periods or credited_milli == 0:
        return
    _lock_cap_usage(action.household_id, row.id, [p.key for p in periods])
    for period in periods:
        _change_cap_usage(action.household_id, row.id, period, -credited_milli)


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
