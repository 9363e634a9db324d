"""What residents and cashiers read about codes and redemptions: lists and the till's preview.

Nothing here writes: a preview burns and reserves nothing. Lists look up reward and
merchant names for a whole page in one query each.
"""
from sqlalchemy import and_, or_, select

from ..columns import utcnow
from ..extensions import db
from ..ledger import service as ledger
from ..merchants.models import Merchant
from ..paging import page_rows
from . import service
from .models import Redemption, RedemptionCode, Reward
from .settlement import redemptions_today

CODE_STATUSES = ("live", "used", "expired", "burned")


# ---------------------------------------------------------------- names for a page


def reward_names(reward_ids) -> dict[str, str]:
    ids = set(reward_ids)
    if not ids:
        return {}
    return dict(db.session.execute(select(Reward.id, Reward.name).where(Reward.id.in_(ids))).all())


# ---------------------------------------------------------------- a household's codes


def code_status(code: RedemptionCode, now) -> str:
    """live | used | expired | burned. A code refused as expired at the till reads "expired"."""
    if code.state == "used":
        return "used"
    if code.state == "burned":
        return "expired" if code.refusal_code == "code_expired" else "burned"
    return "live" if code.expires_at > now else "expired"


def _status_filter(status: str, now):
    live = RedemptionCode.state == "live"
    return {
        "live": and_(live, RedemptionCode.expires_at > now),
        "used": RedemptionCode.state == "used",
        "expired": or_(and_(live, RedemptionCode.expires_at <= now),
                       and_(RedemptionCode.state == "burned", RedemptionCode.refusal_code == "code_expired")),
        "burned": and_(RedemptionCode.state == "burned",
                       or_(RedemptionCode.refusal_code.is_(None), RedemptionCode.refusal_code != "code_expired")),
    }[status]


def household_codes(household_id: str, limit: int, cursor, status: str | None = None) -> list[RedemptionCode]:
    """A household's codes, newest first (limit + 1 rows for paging)."""
    query = select(RedemptionCode).where(RedemptionCode.household_id == household_id)
    if status is not None:
        query = query.where(_status_filter(status, utcnow()))
    return page_rows(query, RedemptionCode, limit, cursor)


def code_items(codes: list[RedemptionCode]) -> list[dict]:
    """Codes as the household sees them; the digits (and QR links) only while a code is live."""
    now = utcnow()
    names = reward_names(c.reward_id for c in codes)
    items = []
    for code in codes:
        status = code_status(code, now)
        live = status == "live"
        base = f"/api/v1/redemption-codes/{code.id}"
        items.append({
            "id": code.id, "reward_id": code.reward_id, "reward_name": names.get(code.reward_id),
            "status": status, "quantity": code.quantity, "points_cost": code.points_cost,
            "expires_at": code.expires_at, "created_at": code.created_at,
            "code": service.unseal(code) if live else None,
            "qr_png_url": f"{base}/qr.png" if live else None, "qr_svg_url": f"{base}/qr.svg" if live else None,
            "redemption_id": code.redemption_id if status == "used" else None,
            "refusal": code.refusal_code if code.state == "burned" else None,
        })
    return items


# ---------------------------------------------------------------- a household's redemptions


def household_redemptions(household_id: str, limit: int, cursor, status: str | None = None) -> list[Redemption]:
    """A household's redemptions at any merchant, newest first (limit + 1 rows for paging)."""
    query = select(Redemption).where(Redemption.household_id == household_id)
    if status is not None:
        query = query.where(Redemption.status == status)
    return page_rows(query, Redemption, limit, cursor)


# ---------------------------------------------------------------- the till's preview


def preview_code(raw_code: str, merchant_id: str) -> dict:
    """What redeeming this code here would do now, without burning or reserving it.

    Unknown codes and other merchants' codes are both 404 code_not_found, so the preview
    tells a prober nothing. `reason` is the refusal a redemption now would meet.
    """
    code = service._find_code(raw_code)
    if code.merchant_id != merchant_id:
        raise service.CodeNotFound()
    now = utcnow()
    reward = db.session.get(Reward, code.reward_id)
    status = code_status(code, now)
    reply = {
        "code_id": code.id, "reward_id": code.reward_id, "reward_name": reward.name, "quantity": code.quantity,
        "points": code.points_cost, "expires_at": code.expires_at, "status": status,
        "redemption_id": code.redemption_id if status == "used" else None,
    }
    reason = _refusal(code, reward, now) if code.state == "live" else (
        "already_redeemed" if code.state == "used" else code.refusal_code)
    return {**reply, "redeemable": reason is None, "reason": reason}


def _refusal(code: RedemptionCode, reward: Reward, now) -> str | None:
    """The code a live code's redemption would be refused with now, or None. Same order as the redemption."""
    merchant = db.session.get(Merchant, code.merchant_id)
    if code.expires_at <= now:
        return "code_expired"
    if not service.is_available(reward, merchant, now):
        return "reward_unavailable"
    if reward.per_household_limit is not None and (
        service._redeemed_quantity(code.household_id, reward.id) + code.quantity > reward.per_household_limit
    ):
        return "limit_reached"
    if reward.stock < code.quantity:
        return "out_of_stock"
    if merchant.daily_redemption_limit is not None and (
        redemptions_today(merchant.id, now) >= merchant.daily_redemption_limit
    ):
        return "merchant_daily_limit"
    if ledger.account_of("household", code.household_id).balance < code.points_cost:
        return "insufficient_points"
    return None
