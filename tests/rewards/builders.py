"""Fixtures for merchants, rewards, points and codes (used by tests/rewards and tests/merchants)."""
import pytest

from app.extensions import db
from app.ledger import service as ledger
from app.merchants import service as merchants
from app.rewards import service as rewards


@pytest.fixture
def make_merchant(community, admin):
    def make(community_id=None, **fields):
        merchant = merchants.create_merchant(admin.user, {"name": "绿色小店", "community_id": community_id or community.id,
                                                          **fields})
        db.session.commit()
        return merchant

    return make


@pytest.fixture
def merchant(make_merchant):
    return make_merchant()


@pytest.fixture
def clerk(make_staff, merchant):
    """A merchant_staff account of `merchant`."""
    return make_staff("merchant_staff", merchant_id=merchant.id)


@pytest.fixture
def make_reward(merchant):
    def make(of=None, **fields):
        data = {"name": "环保袋", "points_cost": 100, "stock": 50, **fields}
        reward = rewards.create_reward(of or merchant, data)
        db.session.commit()
        return reward

    return make


@pytest.fixture
def reward(make_reward):
    return make_reward()


@pytest.fixture
def fund():
    """Give a household points (an adjustment from issuance), optionally expiring at a given time."""

    def give(household_id, points, expires_at=None):
        ledger.transfer(ledger.system_account("issuance", household_id), ledger.account_of("household", household_id),
                        points, kind="adjustment", ref_type="test", ref_id="fund", expires_at=expires_at)
        db.session.commit()

    return give


@pytest.fixture
def get_code(client):
    """POST /redemption-codes as a resident; returns the reply's JSON (asserting 201)."""

    def get(person, reward, quantity=None):
        body = {"reward_id": reward.id} if quantity is None else {"reward_id": reward.id, "quantity": quantity}
        reply = client.post("/api/v1/redemption-codes", json=body, headers=person.headers)
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()

    return get


def balance(household_id) -> int:
    """The wallet balance as stored now."""
    db.session.expire_all()
    return ledger.account_of("household", household_id).balance


def merchant_balance(merchant_id) -> int:
    db.session.expire_all()
    return ledger.account_of("merchant", merchant_id).balance
