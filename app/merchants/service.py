"""Merchants, their staff, monthly settlement and anomaly flags. Nothing here commits."""
import csv
import io
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from ..accounts import service as accounts
from ..accounts.models import Community, User
from ..columns import utcnow
from ..errors import NotFound, validation_error
from ..schemas import page_rows
from ..extensions import db
from ..ledger import service as ledger
from .models import AnomalyFlag, Merchant

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_ANOMALY_THRESHOLD = 3


# ---------------------------------------------------------------- Shanghai days and months


def shanghai_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of an Asia/Shanghai calendar day, as aware datetimes."""
    start = datetime.combine(day, time(), tzinfo=SHANGHAI)
    return start, datetime.combine(day + timedelta(days=1), time(), tzinfo=SHANGHAI)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of an Asia/Shanghai month written YYYY-MM."""
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=SHANGHAI)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def current_month() -> str:
    return utcnow().astimezone(SHANGHAI).strftime("%Y-%m")


# ---------------------------------------------------------------- merchants


def may_manage(user: User, merchant: Merchant) -> bool:
    """District admins manage every merchant, community staff those of their communities."""
    if user.role == "district_admin":
        return True
    return user.role == "community_staff" and merchant.community_id in user.community_ids


def may_see(user: User, merchant: Merchant) -> bool:
    return may_manage(user, merchant) or (user.role == "merchant_staff" and user.merchant_id == merchant.id)


def create_merchant(user: User, data: dict) -> Merchant:
    """A merchant of a community, with its points account. Does not commit."""
    community = db.session.get(Community, data["community_id"])
    if community is None:
        raise validation_error("community_id", "No such community.")
    if user.role == "community_staff" and community.id not in user.community_ids:
        raise NotFound("No such community among yours")
    merchant = Merchant(name=data["name"].strip(), community_id=community.id, active=True,
                        daily_redemption_limit=data.get("daily_redemption_limit"))
    db.session.add(merchant)
    db.session.flush()
    ledger.account_of("merchant", merchant.id)
    return merchant


def merchant_for(user: User, merchant_id: str, *, manage: bool = False) -> Merchant:
    """The merchant if the caller may see (or manage) it; 404 otherwise."""
    merchant = db.session.get(Merchant, merchant_id)
    allowed = merchant is not None and (may_manage(user, merchant) if manage else may_see(user, merchant))
    if not allowed:
        raise NotFound("No such merchant")
    return merchant


def update_merchant(merchant: Merchant, data: dict) -> Merchant:
    """Rename, (de)activate or set the daily redemption limit. Does not commit."""
    if "name" in data:
        merchant.name = data["name"].strip()
    for field in ("active", "daily_redemption_limit"):
        if field in data:
            setattr(merchant, field, data[field])
    merchant.updated_at = utcnow()
    db.session.flush()
    return merchant


def list_merchants(user: User, limit: int, cursor) -> list[Merchant]:
    query = select(Merchant)
    if user.role == "community_staff":
        query = query.where(Merchant.community_id.in_(user.community_ids))
    elif user.role == "merchant_staff":
        query = query.where(Merchant.id == user.merchant_id)
    return page_rows(query, Merchant, limit, cursor)


def add_staff(merchant: Merchant, data: dict) -> User:
    """A merchant_staff account of this merchant. Does not commit."""
    return accounts.create_staff({**data, "role": "merchant_staff", "merchant_id": merchant.id})


def merchant_view(merchant: Merchant) -> dict:
    return {
        "id": merchant.id, "name": merchant.name, "community_id": merchant.community_id,
        "active": merchant.active, "daily_redemption_limit": merchant.daily_redemption_limit,
        "created_at": merchant.created_at,
    }


# ---------------------------------------------------------------- anomaly flags


def flag_if_unusual(household_id: str, merchant: Merchant, count_today: int, now: datetime) -> AnomalyFlag | None:
    """Raise (or update) the flag when a household's redemptions at a merchant today exceed the threshold.

    The caller holds the household's wallet lock, so one household's flags are written one at a time.
    Never refuses. Does not commit.
    """
    threshold = current_app.config.get("ANOMALY_REDEMPTIONS_PER_DAY", DEFAULT_ANOMALY_THRESHOLD)
    if count_today <= threshold:
        return None
    day = shanghai_day(now)
    flag = db.session.scalar(select(AnomalyFlag).where(
        AnomalyFlag.household_id == household_id, AnomalyFlag.merchant_id == merchant.id, AnomalyFlag.day == day,
    ))
    if flag is None:
        flag = AnomalyFlag(household_id=household_id, merchant_id=merchant.id, community_id=merchant.community_id,
                           day=day, redemptions=count_today, created_at=now, updated_at=now)
        db.session.add(flag)
    else:
        if count_today > flag.redemptions and flag.resolved_at is not None:
            flag.resolved_at = flag.resolved_by = None  # the burst went on after staff closed it: look again
        flag.redemptions, flag.updated_at = max(flag.redemptions, count_today), now
    db.session.flush()
    return flag


def list_anomalies(user: User, limit: int, cursor, state: str | None = None) -> list[AnomalyFlag]:
    """Flags of the caller's communities (all of them for a district admin), newest first; open or resolved."""
    from .anomalies import state_filter

    query = state_filter(select(AnomalyFlag), state)
    if user.role == "community_staff":
        query = query.where(AnomalyFlag.community_id.in_(user.community_ids))
    return page_rows(query, AnomalyFlag, limit, cursor)


def anomaly_view(flag: AnomalyFlag) -> dict:
    return {
        "id": flag.id, "kind": flag.kind, "household_id": flag.household_id, "merchant_id": flag.merchant_id,
        "merchant_name": db.session.get(Merchant, flag.merchant_id).name, "community_id": flag.community_id,
        "day": flag.day, "redemptions": flag.redemptions, "created_at": flag.created_at,
        "updated_at": flag.updated_at, "state": "open" if flag.resolved_at is None else "resolved",
        "resolved_at": flag.resolved_at, "resolved_by": flag.resolved_by, "note": flag.resolution_note,
    }


# ---------------------------------------------------------------- settlement


def settlement(merchant_id: str, month: str) -> dict:
    """Points redeemed at a merchant in an Asia/Shanghai month, and points voided in it.

    A redemption counts in the month it was made; its void counts in the month of the void.
    """
    from ..rewards.models import Redemption, Reward

    start, end = month_bounds(month)
    names = dict(db.session.execute(select(Reward.id, Reward.name).where(Reward.merchant_id == merchant_id)).all())
    cells = defaultdict(lambda: {"redemptions": 0, "quantity": 0, "redeemed_points": 0, "voids": 0, "voided_points": 0})
    made = db.session.execute(
        select(Redemption.reward_id, Redemption.quantity, Redemption.points, Redemption.created_at)
        .where(Redemption.merchant_id == merchant_id, Redemption.created_at >= start, Redemption.created_at < end)
    ).all()
    for reward_id, quantity, points, created_at in made:
        cell = cells[(shanghai_day(created_at), reward_id)]
        cell["redemptions"] += 1
        cell["quantity"] += quantity
        cell["redeemed_points"] += points
    voided = db.session.execute(
        select(Redemption.reward_id, Redemption.points, Redemption.voided_at)
        .where(Redemption.merchant_id == merchant_id, Redemption.voided_at >= start, Redemption.voided_at < end)
    ).all()
    for reward_id, points, voided_at in voided:
        cell = cells[(shanghai_day(voided_at), reward_id)]
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
    from ..rewards.models import Redemption

    start, end = day_bounds(shanghai_day(now))
    query = select(func.count()).select_from(Redemption).where(
        Redemption.merchant_id == merchant_id, Redemption.created_at >= start, Redemption.created_at < end,
    )
    if not include_voided:
        query = query.where(Redemption.status == "completed")
    if household_id is not None:
        query = query.where(Redemption.household_id == household_id)
    return db.session.scalar(query)
