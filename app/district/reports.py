"""The district's points liability and its reductions summary for dashboards."""
from datetime import date, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from ..accounts.models import Community, Household
from ..columns import utcnow
from ..extensions import db
from ..ledger.kinds import Meaning, kinds_meaning
from ..ledger.models import LedgerAccount, LedgerEntry, PointLot
from .exports import Cells

EARNING, REDEEMING = kinds_meaning(Meaning.EARNING), kinds_meaning(Meaning.REDEEMING)

WINDOW = timedelta(days=90)


def _ratio(numerator: int, denominator: int) -> tuple[int | None, str | None]:
    """(basis points, decimal string with 4 places), both floored; None when nothing was earned."""
    if denominator <= 0:
        return None, None
    bp = max(numerator, 0) * 10000 // denominator
    return bp, f"{bp // 10000}.{bp % 10000:04d}"


def liability(now=None) -> dict:
    """Outstanding and expiring points by community, the 90-day redemption rate, campaign budgets."""
    now = now or utcnow()
    wallets = (select(Household.community_id.label("community_id"), func.count().label("households"),
                      func.sum(LedgerAccount.balance).label("balance"),
                      func.sum(LedgerAccount.clawback).label("clawback"))
               .join(LedgerAccount, and_(LedgerAccount.kind == "household", LedgerAccount.owner_id == Household.id))
               .group_by(Household.community_id))
    expiring = dict(db.session.execute(
        select(Household.community_id, func.sum(PointLot.remaining))
        .join(LedgerAccount, LedgerAccount.id == PointLot.account_id)
        .join(Household, and_(LedgerAccount.kind == "household", Household.id == LedgerAccount.owner_id))
        .where(PointLot.remaining > 0, PointLot.expires_at > now, PointLot.expires_at <= now + WINDOW)
        .group_by(Household.community_id)).all())
    communities = []
    for row in db.session.execute(wallets.order_by(Household.community_id)):
        community = db.session.get(Community, row.community_id)
        communities.append({
            "community_id": row.community_id, "name": community.name, "street": community.street.name,
            "households": int(row.households), "outstanding_points": int(row.balance or 0),
            "clawback_points": int(row.clawback or 0),
            "expiring_90d_points": int(expiring.get(row.community_id) or 0),
        })
    communities.sort(key=lambda c: (-c["outstanding_points"], c["community_id"]))
    return {
        "as_of": now,
        "outstanding_points": sum(c["outstanding_points"] for c in communities),
        "clawback_points": sum(c["clawback_points"] for c in communities),
        "expiring_90d_points": sum(c["expiring_90d_points"] for c in communities),
        "communities": communities,
        "redemption_90d": _redemption(now),
        "campaigns": _campaigns(),
    }


def _redemption(now) -> dict:
    totals = dict(db.session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerAccount.kind == "household", LedgerEntry.created_at > now - WINDOW,
               LedgerEntry.kind.in_(EARNING | REDEEMING))
        .group_by(LedgerEntry.kind)).all())
    earned = sum(int(v) for k, v in totals.items() if k in EARNING)
    redeemed = max(-sum(int(v) for k, v in totals.items() if k in REDEEMING), 0)
    bp, rate = _ratio(redeemed, earned)
    return {"earned_points": earned, "redeemed_points": redeemed, "rate_bp": bp, "rate": rate}


def _campaigns() -> dict:
    """Committed = what campaign accounts hold; spent = what they paid to households, net of returns."""
    balances = dict(db.session.execute(
        select(LedgerAccount.owner_id, func.sum(LedgerAccount.balance))
        .where(LedgerAccount.kind == "campaign").group_by(LedgerAccount.owner_id)).all())
    spent = {owner: 0 for owner in balances}
    for debit_kind, credit_kind, sign in (("campaign", "household", 1), ("household", "campaign", -1)):
        debit, credit = aliased(LedgerEntry), aliased(LedgerEntry)
        debit_account, credit_account = aliased(LedgerAccount), aliased(LedgerAccount)
        campaign_owner = debit_account.owner_id if debit_kind == "campaign" else credit_account.owner_id
        for owner, amount in db.session.execute(
            select(campaign_owner, func.sum(credit.amount))
            .select_from(debit)
            .join(debit_account, debit_account.id == debit.account_id)
            .join(credit, and_(credit.transfer_id == debit.transfer_id, credit.amount > 0))
            .join(credit_account, credit_account.id == credit.account_id)
            .where(debit.amount < 0, debit_account.kind == debit_kind, credit_account.kind == credit_kind)
            .group_by(campaign_owner)
        ):
            spent[owner] = spent.get(owner, 0) + sign * int(amount)
    items = [{"campaign_id": owner, "committed_points": int(balances.get(owner) or 0),
              "spent_points": spent.get(owner, 0)} for owner in sorted(set(balances) | set(spent))]
    return {"committed_points": sum(i["committed_points"] for i in items),
            "spent_points": sum(i["spent_points"] for i in items), "items": items}


def summary(period_from: date, period_to: date) -> dict:
    """Reductions and participation by month and action type, from the rollups (not suppressed)."""
    cells = Cells(period_from, period_to, ["month", "action_type"])
    items = [{"month": labels[0], "action_type": labels[1], **measures} for _, labels, measures in cells.rows()]
    totals = {name: sum(i[name] for i in items) for name in ("actions", "reduction_g", "verified_reduction_g", "points")}
    totals["households"] = cells.total_households()
    return {"period_from": period_from, "period_to": period_to, "factor_sets": cells.factor_sets,
            "items": items, "totals": totals}
