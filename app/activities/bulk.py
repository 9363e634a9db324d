"""Approving many device or import records at once: the set-based twin of `review.approve_unless_capped`.

A batch builds its new actions in memory (`NewAction`) in the order it records them. `CapBook` reads
and locks the cap usage rows of all of them in one pass (the wallets are already locked, as
`review._lock_for_valuation` has them first); `approve_unless_capped` then values each action
against the usage the batch has left (`valuation.value`, as one by one) and approves it whole, with
its receipt, base points (ledger journal) and campaign parts, or holds it pending as "exceeds_cap".
`insert_actions` and `CapBook.write` store it all with one statement per table. Nothing here commits.
"""
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from ..dialect import insert_rows, is_in, update_rows
from ..errors import Conflict
from ..extensions import db
from ..ledger.kinds import EntryKind
from . import valuation
from .models import Action, CapUsage, FactorRow
from .review import HELD_OVER_CAP


@dataclass
class NewAction:
    """An action of a batch, valued in memory and inserted with the others (`row()`)."""

    id: str
    household_id: str
    community_id: str
    action_type: str
    variant: str | None
    quantity: Decimal
    unit: str
    occurred_at: datetime
    source: str
    factor: FactorRow
    integration_id: str | None
    external_id: str | None
    created_at: datetime
    review_reason: str | None = None
    status: str = "pending"
    credited_quantity: Decimal | None = None
    reduction_g: int = 0
    verified: bool = False
    base_points: int = 0
    campaign_points: int = 0
    points: int = 0
    approved_by: str | None = None
    approved_at: datetime | None = None
    receipt: dict | None = field(default=None)

    def row(self) -> dict:
        """The actions row, every column given (as record_action leaves them for a new action)."""
        return {
            "id": self.id, "household_id": self.household_id, "resident_id": None, "community_id": self.community_id,
            "action_type": self.action_type, "variant": self.variant or None, "quantity": self.quantity,
            "credited_quantity": self.credited_quantity, "unit": self.unit, "occurred_at": self.occurred_at,
            "source": self.source, "status": self.status, "evidence": None, "note": None,
            "review_reason": self.review_reason, "appeal": False, "appeal_note": None, "reject_reason": None,
            "reversal_reason": None, "factor_id": self.factor.id, "reduction_g": self.reduction_g,
            "verified": self.verified, "base_points": self.base_points, "campaign_points": self.campaign_points,
            "points": self.points,
            "receipt": valuation.receipt_json(self.receipt) if self.receipt is not None else None,
            "recorded_by": None, "approved_by": self.approved_by, "approved_at": self.approved_at,
            "rejected_by": None, "rejected_at": None, "reversed_by": None, "reversed_at": None,
            "integration_id": self.integration_id, "external_id": self.external_id, "created_at": self.created_at,
        }


def insert_actions(actions: list[NewAction]) -> set[str]:
    """Insert the actions in one statement, skipping an (integration_id, external_id) already stored
    (by a concurrent transaction, which it waits for); returns the ids inserted."""
    result = insert_rows(Action.__table__, [a.row() for a in actions],
                         skip_conflicts_on=["integration_id", "external_id"], returning=[Action.__table__.c.id])
    return set(result.scalars()) if result is not None else set()


class CapBook:
    """The cap usage rows of a batch's actions, read and locked in one pass.

    A row that does not exist yet counts as 0 and is inserted by `write` only if an approval (or a
    hold over the cap) would have created it one by one; no other transaction can create it
    meanwhile, since every writer of a household's usage holds its wallet lock.
    """

    def __init__(self, actions: list[NewAction]):
        keys = {(a.household_id, a.factor.id, period.key) for a in actions for period in _periods(a)}
        self._used: dict[tuple, int] = {}
        if keys:
            rows = db.session.execute(
                select(CapUsage.household_id, CapUsage.factor_id, CapUsage.period, CapUsage.used_milli)
                .where(is_in(CapUsage.household_id, {k[0] for k in keys}), CapUsage.factor_id.in_({k[1] for k in keys}),
                       CapUsage.period.in_({k[2] for k in keys}))
                .order_by(CapUsage.household_id, CapUsage.factor_id, CapUsage.period).with_for_update()
            ).all()
            self._used = {(h, f, p): used for h, f, p, used in rows if (h, f, p) in keys}
        self._start = dict(self._used)
        self._new: set[tuple] = set()

    def used(self, action: NewAction, periods) -> dict[str, int]:
        """What the action's periods have used so far; their rows will exist once the batch is written."""
        found = {}
        for period in periods:
            key = (action.household_id, action.factor.id, period.key)
            if key not in self._used:
                self._used[key] = 0
                self._new.add(key)
            found[period.key] = self._used[key]
        return found

    def take(self, action: NewAction, periods, credited_milli: int) -> None:
        for period in periods:
            key = (action.household_id, action.factor.id, period.key)
            if self._used[key] + credited_milli > period.cap_milli:
                raise Conflict("The household's cap usage changed concurrently; retry")
            self._used[key] += credited_milli

    def write(self) -> None:
        """Insert the new usage rows and move the changed ones (guarded by the value read under the lock)."""
        insert_rows(CapUsage.__table__, [{"household_id": h, "factor_id": f, "period": p, "used_milli": self._used[(h, f, p)]}
                                         for h, f, p in sorted(self._new)])
        changed = [{"household_id": h, "factor_id": f, "period": p, "used_milli": used,
                    "old_used_milli": self._start[(h, f, p)]}
                   for (h, f, p), used in sorted(self._used.items())
                   if (h, f, p) in self._start and used != self._start[(h, f, p)]]
        count = update_rows(CapUsage.__table__, changed, match=["household_id", "factor_id", "period"],
                            guard={"used_milli": "old_used_milli"})
        if count != len(changed):
            raise Conflict("The household's cap usage changed concurrently; retry")
        self._start, self._new = dict(self._used), set()


def _periods(action: NewAction):
    return valuation.cap_periods(action.occurred_at, action.factor.daily_cap, action.factor.monthly_cap)


def approve_unless_capped(action: NewAction, caps: CapBook, journal, parts, *, approver_id=None) -> bool:
    """Approve a new device or import action whole (receipt, base points, campaign parts), or hold it
    pending as "exceeds_cap" when a cap would cut it; True if approved."""
    row = action.factor
    periods = _periods(action)
    valued = valuation.value(action.quantity, row.kgco2e_per_unit, row.points_per_unit, periods,
                             caps.used(action, periods))
    if valued.cut_by_caps(action.quantity):
        action.review_reason = HELD_OVER_CAP
        return False
    caps.take(action, periods, valued.credited_milli)
    at = action.created_at
    action.status, action.credited_quantity = "approved", valued.credited
    action.reduction_g, action.base_points = valued.reduction_g, valued.base_points
    action.campaign_points, action.points = 0, valued.base_points
    action.verified = bool(row.verifiable)  # a device or an import: a third party's word
    action.approved_by, action.approved_at = approver_id, at
    action.receipt = valuation.receipt(row=row, quantity=action.quantity, valuation=valued,
                                       verified=action.verified, source=action.source,
                                       approver_id=approver_id, approved_at=at)
    if action.base_points:
        journal.award(action.household_id, action.base_points, kind=EntryKind.ACTION, ref_type="action",
                      ref_id=action.id, actor_id=approver_id, at=at)
    parts.apply(action, journal, at)
    return True
