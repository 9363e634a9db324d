"""Builders for the district and park page tests: past actions recorded as they were then, households."""
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from app.activities import service as activities
from app.district import dashboard
from app.extensions import db
from app.localtime import SHANGHAI, today


def mid_month(label: str) -> datetime:
    return datetime(int(label[:4]), int(label[5:]), 15, 10, tzinfo=SHANGHAI)


def last_months(count: int = 6) -> list[str]:
    return dashboard.month_labels(today(), count)


@pytest.fixture
def record(factor_set, make_staff):
    """Staff record an action on a past day, as they did then (approved at once; verified when verifiable)."""
    recorder = make_staff("district_admin")

    def make(person, when, variant="paper", quantity="1", action_type="recycling"):
        action = activities.record_action(
            household_id=person.household_id, resident_id=person.id, action_type=action_type, variant=variant,
            quantity=Decimal(quantity), unit="kg", occurred_at=when, source="staff", actor_id=recorder.id,
            recorded_at=when + timedelta(hours=2))
        db.session.commit()
        assert action.status == "approved"
        return action

    return make


@pytest.fixture
def district(make_community, make_resident, record):
    """A: households a1, a2; B: household b1; actions two months and one month before this one.

    Month before last: 6,750 g (recycling 3,150 g, second-hand 3,600 g), 2 households; last month:
    2,500 g (recycling), 2 households; 925 points in all.
    """
    a, b = make_community("甲社区"), make_community("乙社区")
    a1, a2, b1 = make_resident(community_id=a.id), make_resident(community_id=a.id), make_resident(community_id=b.id)
    months = last_months()
    earlier, last = mid_month(months[3]), mid_month(months[4])
    record(a1, earlier, "paper", "2")                    # 2,000 g, 200 points
    record(a1, earlier, "pet", "1")                      # 1,150 g, 115 points
    record(b1, earlier, "clothing", "1", "second_hand")  # 3,600 g, 360 points
    record(a2, last, "paper", "1.5")                     # 1,500 g, 150 points
    record(a1, last, "paper", "1")                       # 1,000 g, 100 points
    return {"a": a, "b": b, "a1": a1, "a2": a2, "b1": b1, "months": months}


@pytest.fixture
def redeemed_in_a(district, make_merchant, make_reward, make_staff):
    """100 points of household a1 redeemed at a merchant of community a (甲社区)."""
    from app.rewards import service as rewards

    merchant = make_merchant(community_id=district["a"].id)
    clerk = make_staff("merchant_staff", merchant_id=merchant.id)
    reward = make_reward(of=merchant, points_cost=100)
    _, digits = rewards.create_code(district["a1"].user, reward.id, 1)
    rewards.redeem_code(digits, merchant.id, clerk.id)
    db.session.commit()
