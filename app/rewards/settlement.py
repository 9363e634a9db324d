"""A merchant's monthly settlement statement, and its redemption counts for limits and flags."""
import csv
import io
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..localtime import day_bounds, local_date, month_bounds
from .models import Redemption, Reward


def settlement(merchant_id: str, month: str) -> dict:
    """Points redeemed at a merchant in an Asia/Shanghai month, and points voided in it.

    A redemption counts in the month it was made; its void counts in the month of the void.
    """
    start, end = month_bounds(month)
    names = dict(db.session.execute(select(Reward.id, Reward.name).where(Reward.merchant_id == merchant_id)).all())
    cells = defaultdict(lambda: {"redemptions": 0, "quantity": 0, "redeemed_points": 0, "voids": 0, "voided_points": 0})
    made = db.session.execute(
        select(Redemption.reward_id, Redemption.quantity, Redemption.points, Redemption.created_at)
        .where(Redemption.merchant_id == merchant_id, Redemption.created_at >= start, Redemption.created_at < end)
    ).all()
    for reward_id, quantity, points, created_at in made:
        cell = cells[(local_date(created_at), reward_id)]
        cell["redemptions"] += 1
        cell["quantity"] += quantity
        cell["redeemed_points"] += points
    voided = db.session.execute(
        select(Redemption.reward_id, Redemption.points, Redemption.voided_at)
        .where(Redemption.merchant_id == merchant_id, Redemption.voided_at >= start, Redemption.voided_at < end)
    ).all()
    for reward_id, points, voided_at in voided:
        cell = cells[(local_date(voided_at), reward_id)]
        cell["voids"] += 1
        cell["voided_points"] += points
    rows = [{"day": day, "reward_id": reward_id, "reward_name": names.get(reward_id, ""), **cell,
             "net_points": cell["redeemed_points"] - cell["voided_points"]}
            for (day, reward_id), cell in sorted(cells.items())]
    return {
        "month": month,
        "merchant_id": merchant_id,
        **_totals(rows),
        "by_reward": _group(rows, "reward_id", extra=lambda r: {"name": r["reward_name"]}),
        "by_day": _group(rows, "day"),
        "rows": rows,
    }


def _totals(rows) -> dict:
    keys = ("redemptions", "quantity", "redeemed_points", "voids", "voided_points", "net_points")
    return {key: sum(row[key] for row in rows) for key in keys}


def _group(rows, key, extra=lambda row: {}) -> list[dict]:
    groups = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return [{key: value, **extra(members[0]), **_totals(members)} for value, members in sorted(groups.items())]


CSV_COLUMNS = ["day", "reward_id", "reward_name", "redemptions", "quantity", "redeemed_points", "voids",
               "voided_points", "net_points"]


def settlement_csv(report: dict) -> bytes:
    """The statement as CSV (UTF-8 with a BOM): one row per day and reward, then the month's total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["rows"]:
        writer.writerow([row["day"].isoformat(), row["reward_id"], _cell_text(row["reward_name"]),
                         *(row[c] for c in CSV_COLUMNS[3:])])
    writer.writerow(["total", "", "", *(report[c] for c in CSV_COLUMNS[3:])])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell_text(value: str) -> str:
    """Keep spreadsheet programs from running a merchant-chosen name as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def redemptions_today(merchant_id: str, now: datetime, *, household_id: str | None = None,
                      include_voided: bool = False) -> int:
    """Redemptions at a merchant on this Shanghai day: completed ones, or all; optionally of one household."""
    start, end = day_bounds(local_date(now))
    query = select(func.count()).select_from(Redemption).where(
        Redemption.merchant_id == merchant_id, Redemption.created_at >= start, Redemption.created_at < end,
    )
    if not include_voided:
        query = query.where(Redemption.status == "completed")
    if household_id is not None:
        query = query.where(Redemption.household_id == household_id)
    return db.session.scalar(query)
