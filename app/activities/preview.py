"""Read-only views of valuation: what a pending action would earn now, what a household's caps still allow.

Nothing here writes, locks or commits: cap usage is read as it stands and valued
with the same pure arithmetic an approval uses (`valuation`). A page of the review
queue costs a fixed number of queries, whatever its length.
"""
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from ..accounts.models import Household, User
from ..accounts.service import mask_phone
from ..campaigns import service as campaigns
from ..columns import utcnow
from ..extensions import db
from . import valuation
from .models import Action, CapUsage, FactorRow, FactorSet
from .schemas import plain
from ..localtime import local_date
from .factors import set_in_force


def mask_name(name: str | None) -> str | None:
    """王小明 → 王**, Alice → A**: enough for staff to match a face, not to read a name out."""
    if not name:
        return None
    return name[0] + "**"


# ---------------------------------------------------------------- factor rows in force, for many days at once


def _sets_in_force(days: set[date]) -> dict[date, str]:
    """day → id of the published set in force on it (days with none are left out). One query."""
    published = db.session.execute(
        select(FactorSet.id, FactorSet.effective_from).where(FactorSet.status == "published")
        .order_by(FactorSet.effective_from.desc())
    ).all()
    found = {}
    for day in days:
        match = next((set_id for set_id, start in published if start <= day), None)
        if match is not None:
            found[day] = match
    return found


def _valuation_rows(actions: list[Action]) -> dict[str, FactorRow]:
    """action id → the row an approval now would use (as `review.valuation_row`), in two queries."""
    by_day = _sets_in_force({local_date(a.occurred_at) for a in actions})
    set_ids = set(by_day.values())
    rows = db.session.scalars(
        select(FactorRow).where(FactorRow.factor_set_id.in_(set_ids),
                                FactorRow.action_type.in_({a.action_type for a in actions}))
    ).all() if set_ids else []
    index = {(r.factor_set_id, r.action_type, r.variant, r.unit): r for r in rows}
    chosen = {}
    for action in actions:
        set_id = by_day.get(local_date(action.occurred_at))
        row = index.get((set_id, action.action_type, action.variant or "", action.unit))
        chosen[action.id] = row if row is not None and set_id != action.factor.factor_set_id else action.factor
    return chosen


def _usage(keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
    """(household, factor row, period) → used thousandths, for exactly these keys. One query."""
    if not keys:
        return {}
    households, factors, periods = (set(k[i] for k in keys) for i in range(3))
    found = db.session.execute(
        select(CapUsage.household_id, CapUsage.factor_id, CapUsage.period, CapUsage.used_milli)
        .where(CapUsage.household_id.in_(households), CapUsage.factor_id.in_(factors),
               CapUsage.period.in_(periods))
    ).all()
    return {(h, f, p): used for h, f, p, used in found if (h, f, p) in keys}


# ---------------------------------------------------------------- the review queue


def preview_approvals(actions: list[Action]) -> dict[str, tuple[FactorRow, valuation.Valuation]]:
    """For each pending action: the row and valuation an approval now would give it, alone.

    Two pending actions of one household compete for the same cap; each is previewed
    against the usage as it stands, as if it were approved first.
    """
    pending = [a for a in actions if a.status == "pending"]
    if not pending:
        return {}
    rows = _valuation_rows(pending)
    periods = {a.id: valuation.cap_periods(a.occurred_at, rows[a.id].daily_cap, rows[a.id].monthly_cap)
               for a in pending}
    used = _usage({(a.household_id, rows[a.id].id, p.key) for a in pending for p in periods[a.id]})
    previews = {}
    for action in pending:
        row = rows[action.id]
        mine = {p.key: used.get((action.household_id, row.id, p.key), 0) for p in periods[action.id]}
        previews[action.id] = (row, valuation.value(
            action.quantity, row.kgco2e_per_unit, row.points_per_unit, periods[action.id], mine))
    return previews


class ReviewItem:
    """An action as the review queue shows it: every action field, plus `review`."""

    def __init__(self, action: Action, review: dict):
        self._action, self.review = action, review

    def __getattr__(self, name):
        return getattr(self._action, name)


def review_items(actions: list[Action]) -> list[ReviewItem]:
    """Actions with what staff need to decide: masked resident, card, community, points if approved now."""
    residents = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({a.resident_id for a in actions if a.resident_id})))}
    households = dict(db.session.execute(
        select(Household.id, Household.card_number).where(Household.id.in_({a.household_id for a in actions}))
    ).all())
    previews = preview_approvals(actions)
    campaign_parts = campaigns.preview_campaign_points(
        [(action, valued.base_points) for action in actions
         for _, valued in [previews.get(action.id, (None, None))] if valued])
    items = []
    for action in actions:
        resident = residents.get(action.resident_id)
        row, valued = previews.get(action.id, (None, None))
        campaign_points = campaign_parts.get(action.id, 0)
        items.append(ReviewItem(action, {
            "resident_name_masked": mask_name(resident.display_name) if resident else None,
            "phone_masked": mask_phone(resident.phone) if resident else None,
            "household_card": households.get(action.household_id),
            "community_id": action.community_id,
            "points_if_approved": valued.base_points + campaign_points if valued else None,
            "receipt_preview": _receipt_preview(row, valued, campaign_points) if valued else None,
            "appeal_note": action.appeal_note if action.appeal else None,
            "rejection_reason": action.reject_reason,
        }))
    return items


def _receipt_preview(row: FactorRow, valued: valuation.Valuation, campaign_points: int) -> dict:
    return {
        "factor_set": row.factor_set.code, "factor_id": row.id,
        "kgco2e_per_unit": plain(row.kgco2e_per_unit), "points_per_unit": plain(row.points_per_unit),
        "credited_quantity": plain(valued.credited), "cap_applied": valued.binding_cap,
        "cap_remaining": {name: plain(max(left, Decimal(0))) for name, left in valued.cap_remaining.items()},
        "reduction_g": valued.reduction_g, "base_points": valued.base_points, "campaign_points": campaign_points,
        "points": valued.base_points + campaign_points,
    }


# ---------------------------------------------------------------- wallet allowances


def household_allowances(household_id: str, now: datetime | None = None) -> dict:
    """Per factor row in force today (Asia/Shanghai): what the household's caps still allow today and this month."""
    now = now or utcnow()
    today = local_date(now)
    factor_set = set_in_force(today)
    if factor_set is None:
        return {"date": today, "factor_set": None, "items": []}
    rows = factor_set.rows
    periods = {row.id: valuation.cap_periods(now, row.daily_cap, row.monthly_cap) for row in rows}
    used = _usage({(household_id, row.id, p.key) for row in rows for p in periods[row.id]})
    items = []
    for row in rows:
        left = {p.name: valuation.cap_left(p.cap_milli, used.get((household_id, row.id, p.key), 0))
                for p in periods[row.id]}
        daily, monthly = left.get("daily"), left.get("monthly")
        items.append({
            "factor_id": row.id, "action_type": row.action_type, "variant": row.variant or None, "unit": row.unit,
            "sources": row.source_list, "points_per_unit": row.points_per_unit,
            "daily_left": daily, "monthly_left": monthly,
            "points_left_today": _points_left(row, [v for v in (daily, monthly) if v is not None]),
        })
    return {"date": today, "factor_set": factor_set.code, "items": items}


def _points_left(row: FactorRow, lefts: list[Decimal]) -> int | None:
    """Points the tightest cap still allows today; None when the row has no cap at all."""
    if not lefts:
        return None
    return valuation.value(min(lefts), row.kgco2e_per_unit, row.points_per_unit, [], {}).base_points
