"""Demo data: one active campaign in the demo community, with an event check-in code."""
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from ..columns import utcnow
from ..extensions import db

CAMPAIGN_NAME = "旧纸回收月（演示）"
CODE_MINUTES = 7 * 24 * 60


def seed_demo_campaign(context) -> str:
    """Idempotent: reuses the active demo campaign and a live code of it."""
    from ..activities import factors
    from . import service
    from .models import Campaign, CampaignCommunity, CheckinCode

    factors.load_project_factors()  # the campaign's action types must exist
    community = context["community"]
    staff = context["staff"]("13800000001", "社区工作者（演示）", "community_staff",
                             community_ids=[community.id, context["community2"].id])
    now = utcnow()
    campaign = db.session.scalar(
        select(Campaign).join(CampaignCommunity, CampaignCommunity.campaign_id == Campaign.id)
        .where(CampaignCommunity.community_id == community.id, Campaign.name == CAMPAIGN_NAME,
               Campaign.status == "active", Campaign.ends_at > now + timedelta(days=1))
    )
    if campaign is None:
        campaign = service.create_campaign(staff, {
            "name": CAMPAIGN_NAME, "description": "纸类回收积分1.5倍，每次另加5分", "community_ids": [community.id],
            "action_types": ["recycling:paper", "recycling:cardboard"], "starts_at": now - timedelta(days=1),
            "ends_at": now + timedelta(days=30), "multiplier": Decimal("1.5"), "bonus_points": 5, "budget_points": 20_000,
            "per_household_cap": 2_000,
        })
        service.activate_campaign(campaign.id, staff)
    code_row = db.session.scalar(
        select(CheckinCode).where(CheckinCode.campaign_id == campaign.id, CheckinCode.expires_at > now + timedelta(hours=1))
        .order_by(CheckinCode.created_at.desc()).limit(1))
    if code_row is None:
        code_row, code, _ = service.create_checkin_code(campaign.id, staff, 20, CODE_MINUTES)
    else:
        code = service.code_view(code_row)["code"]
    return (f"{CAMPAIGN_NAME} (active until {campaign.ends_at:%Y-%m-%d}); event check-in code {code} "
            f"(20 points, until {code_row.expires_at:%Y-%m-%d %H:%M} UTC)")
