"""Builders for campaign tests: a campaign (draft or active), approved actions, balances."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.activities import service as activities
from app.campaigns import service as campaigns
from app.campaigns.models import CampaignAward
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount
from tests.activities.conftest import ago

API = "/api/v1"


def campaign_body(community_ids, **overrides) -> dict:
    """A campaign as POST /campaigns takes it (JSON values)."""
    body = {"name": "纸类回收月", "community_ids": community_ids, "action_types": ["recycling:paper"],
            "starts_at": (utcnow() - timedelta(days=2)).isoformat(),
            "ends_at": (utcnow() + timedelta(days=10)).isoformat(),
            "multiplier": "1.5", "bonus_points": 0, "budget_points": 10_000}
    body.update(overrides)
    return body


@pytest.fixture
def make_campaign(factor_set, staff, community):
    """A campaign made through the service, active unless activate=False (committed)."""

    def make(*, activate=True, by=None, **overrides):
        who = by or staff
        data = {"name": "纸类回收月", "community_ids": [community.id], "action_types": ["recycling:paper"],
                "starts_at": utcnow() - timedelta(days=2), "ends_at": utcnow() + timedelta(days=10),
                "multiplier": Decimal("1.5"), "bonus_points": 0, "budget_points": 10_000}
        data.update(overrides)
        if isinstance(data["multiplier"], str):
            data["multiplier"] = Decimal(data["multiplier"])
        campaign = campaigns.create_campaign(who.user, data)
        if activate:
            campaigns.activate_campaign(campaign.id, who.user)
        db.session.commit()
        return campaign

    return make


@pytest.fixture
def earn(staff):
    """A recycling action logged by staff for a household: approved at once (committed)."""

    def make(person, quantity="1", *, variant="paper", action_type="recycling", occurred_at=None, by=None):
        action = activities.record_action(
            household_id=person.household_id, resident_id=person.id, action_type=action_type, variant=variant,
            quantity=Decimal(quantity), unit="kg", occurred_at=occurred_at or ago(hours=1), source="staff",
            actor_id=(by or staff).id)
        db.session.commit()
        return action

    return make


def wallet(household_id) -> int:
    db.session.expire_all()
    return ledger.account_of("household", household_id).balance


def budget_left(campaign_id) -> int:
    db.session.expire_all()
    account = db.session.get(LedgerAccount, ledger.account_id("campaign", campaign_id))
    return account.balance if account is not None else 0


def issuance_total() -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.coalesce(func.sum(LedgerAccount.balance), 0))
                                 .where(LedgerAccount.kind == "issuance")))


def parts_paid(campaign_id) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(CampaignAward.points), 0))
                                 .where(CampaignAward.campaign_id == campaign_id)))
