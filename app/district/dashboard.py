"""The district dashboard's figures: reductions and participation by month and action type, the communities
that reduced most, and points outstanding against points redeemed.

Everything is read through the services the API uses: the rollup cells of `exports.Cells` (the same
sums and distinct-household counts as `/district/summary` and the exports) and `reports.liability`.
Integers only: grams CO2e, households, points.
"""
from datetime import date

from sqlalchemy import and_, func, select

from ..accounts.models import Household
from ..extensions import db
from ..ledger.models import LedgerAccount, LedgerEntry
from ..localtime import today as local_today
from . import reports
from .exports import Cells

MONTHS = 6
TOP_COMMUNITIES = 5


def month_labels(last: date, count: int) -> list[str]:
    """The `count` months ending with the month of `last`, oldest first, as YYYY-MM."""
    year, month = last.year, last.month
    labels = []
    for _ in range(count):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return labels[::-1]


def dashboard(today: date | None = None, months: int = MONTHS, top: int = TOP_COMMUNITIES) -> dict:
    """The last `months` months up to `today` (Asia/Shanghai): by month, by action type, top communities, points."""
    today = today or local_today()
    labels = month_labels(today, months)
    period_from = date(int(labels[0][:4]), int(labels[0][5:]), 1)
    summary = reports.summary(period_from, today)
    index = {label: i for i, label in enumerate(labels)}

    by_type: dict[str, list[int]] = {}
    reduction = [0] * months
    verified = [0] * months
    actions = [0] * months
    for item in summary["items"]:
        i = index[item["month"]]
        by_type.setdefault(item["action_type"], [0] * months)[i] += item["reduction_g"]
        reduction[i] += item["reduction_g"]
        verified[i] += item["verified_reduction_g"]
        actions[i] += item["actions"]
    types = sorted(by_type, key=lambda t: (-sum(by_type[t]), t))

    households = [0] * months
    for _, (month,), measures in Cells(period_from, today, ["month"]).rows():
        households[index[month]] = measures["households"]

    communities = [{"community_id": ids[0], "name": names[0], "reduction_g": m["reduction_g"],
                    "households": m["households"], "actions": m["actions"]}
                   for ids, names, m in Cells(period_from, today, ["community"]).rows()]
    communities.sort(key=lambda c: (-c["reduction_g"], c["name"], c["community_id"]))

    points = points_by_community()
    return {
        "period_from": period_from, "period_to": today, "months": labels, "factor_sets": summary["factor_sets"],
        "reduction_g": reduction, "verified_reduction_g": verified, "actions": actions,
        "households": households,
        "by_action_type": [{"action_type": t, "reduction_g": by_type[t]} for t in types],
        "top_communities": communities[:top],
        "totals": {**summary["totals"]},
        "points": points,
    }


def redeemed_by_community() -> dict[str, int]:
    """Points households of each community spent on rewards, all time, net of voided redemptions."""
    rows = db.session.execute(
        select(Household.community_id, func.sum(LedgerEntry.amount))
        .select_from(LedgerEntry)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(Household, and_(LedgerAccount.kind == "household", Household.id == LedgerAccount.owner_id))
        .where(LedgerEntry.kind.in_(reports.REDEEMING))
        .group_by(Household.community_id)
    ).all()
    return {community_id: max(-int(total or 0), 0) for community_id, total in rows}


def points_by_community(now=None) -> dict:
    """`reports.liability` (outstanding, expiring, 90-day rate, campaigns) with each community's redeemed points."""
    liability = reports.liability(now)
    redeemed = redeemed_by_community()
    for community in liability["communities"]:
        community["redeemed_points"] = redeemed.get(community["community_id"], 0)
    liability["redeemed_points"] = sum(c["redeemed_points"] for c in liability["communities"])
    return liability
