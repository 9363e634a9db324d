"""Demo data: a merchant of the demo community, its staff account, two rewards, points to spend."""
from sqlalchemy import select

from ..extensions import db

MERCHANT_NAME = "绿色生活便利店（演示）"
MERCHANT_STAFF_PHONE = "13800000002"
REWARDS = (
    {"name": "环保购物袋", "points_cost": 50, "stock": 200, "per_household_limit": 5, "district_wide": False},
    {"name": "公交卡充值10元", "points_cost": 300, "stock": 50, "per_household_limit": None, "district_wide": True},
)
WELCOME_POINTS = 500


def seed_demo_merchant(context) -> str:
    """Idempotent: finds what an earlier run created."""
    from ..ledger import service as ledger
    from ..ledger.kinds import EntryKind
    from ..ledger.models import LedgerEntry
    from . import service as rewards
    from .models import Reward
    from ..merchants.models import Merchant

    community = context["community"]
    merchant = db.session.scalar(
        select(Merchant).where(Merchant.community_id == community.id, Merchant.name == MERCHANT_NAME)
    )
    if merchant is None:
        merchant = Merchant(name=MERCHANT_NAME, community_id=community.id, active=True, daily_redemption_limit=200)
        db.session.add(merchant)
        db.session.flush()
        ledger.account_of("merchant", merchant.id)
    context["staff"](MERCHANT_STAFF_PHONE, "便利店店员（演示）", "merchant_staff", merchant_id=merchant.id)
    for spec in REWARDS:
        found = db.session.scalar(select(Reward).where(Reward.merchant_id == merchant.id, Reward.name == spec["name"]))
        if found is None:
            rewards.create_reward(merchant, spec)
    granted = 0
    for resident in context["residents"]:
        ref_id = f"demo-welcome-{resident.household_id}"
        already = db.session.scalar(
            select(LedgerEntry.id).where(LedgerEntry.ref_type == "demo", LedgerEntry.ref_id == ref_id).limit(1)
        )
        if already is None:
            granted += ledger.award(resident.household_id, WELCOME_POINTS, kind=EntryKind.ADJUSTMENT, ref_type="demo",
                                    ref_id=ref_id, reason="Demo points to try redemption")
    context.setdefault("extra_accounts", []).append(f"merchant staff   {MERCHANT_STAFF_PHONE} ({MERCHANT_NAME})")
    return f"{MERCHANT_NAME}, {len(REWARDS)} rewards, {granted} demo points granted"
