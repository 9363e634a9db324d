"""The district dashboard's figures, from known actions and redemptions."""
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from app.activities import service as activities
from app.district import dashboard
from app.extensions import db
from app.localtime import SHANGHAI, today
from app.rewards import service as rewards
from tests.rewards.builders import *  # noqa: F401,F403  make_merchant, make_reward, clerk


def mid_month(label: str) -> datetime:
    return datetime(int(label[:4]), int(label[5:]), 15, 10, tzinfo=SHANGHAI)


@pytest.fixture
def record(factor_set, make_staff, community):
    """Staff record an action on a past day, as they did then (approved at once)."""
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
    """A: households a1, a2; B: household b1; actions two months and one month before this one."""
    a, b = make_community("甲社区"), make_community("乙社区")
    a1, a2, b1 = make_resident(community_id=a.id), make_resident(community_id=a.id), make_resident(community_id=b.id)
    months = dashboard.month_labels(today(), 6)
    earlier, last = mid_month(months[3]), mid_month(months[4])
    record(a1, earlier, "paper", "2")            # 2,000 g, 200 points
    record(a1, earlier, "pet", "1")              # 1,150 g, 115 points
    record(b1, earlier, "clothing", "1", "second_hand")  # 3,600 g, 360 points
    record(a2, last, "paper", "1.5")             # 1,500 g, 150 points
    record(a1, last, "paper", "1")               # 1,000 g, 100 points
    return {"a": a, "b": b, "a1": a1, "a2": a2, "b1": b1, "months": months}


def test_month_labels_run_back_across_the_new_year():
    assert dashboard.month_labels(date(2027, 2, 10), 4) == ["2026-11", "2026-12", "2027-01", "2027-02"]


def test_reductions_and_households_by_month_and_action_type(district):
    figures = dashboard.dashboard()

    assert figures["months"] == district["months"]
    assert figures["period_from"] == date(int(district["months"][0][:4]), int(district["months"][0][5:]), 1)
    assert figures["reduction_g"] == [0, 0, 0, 6_750, 2_500, 0]
    assert figures["verified_reduction_g"] == [0, 0, 0, 6_750, 2_500, 0]
    assert figures["actions"] == [0, 0, 0, 3, 2, 0]
    assert figures["households"] == [0, 0, 0, 2, 2, 0]
    assert figures["by_action_type"] == [
        {"action_type": "recycling", "reduction_g": [0, 0, 0, 3_150, 2_500, 0]},
        {"action_type": "second_hand", "reduction_g": [0, 0, 0, 3_600, 0, 0]},
    ]
    assert figures["totals"] == {"actions": 5, "reduction_g": 9_250, "verified_reduction_g": 9_250,
                                 "points": 925, "households": 3}


def test_top_communities_rank_by_reductions(district):
    top = dashboard.dashboard()["top_communities"]

    assert [(c["name"], c["reduction_g"], c["households"], c["actions"]) for c in top] == [
        ("甲社区", 5_650, 2, 4), ("乙社区", 3_600, 1, 1)]
    assert dashboard.dashboard(top=1)["top_communities"][0]["community_id"] == district["a"].id


def test_months_before_the_window_are_left_out(district, record):
    record(district["b1"], mid_month(district["months"][3]) - timedelta(days=28), "paper", "5")

    figures = dashboard.dashboard(months=3)

    assert figures["months"] == district["months"][3:]
    assert figures["reduction_g"] == [6_750, 2_500, 0]


def test_points_outstanding_and_redeemed_by_community(district, make_merchant, make_reward, make_staff):
    merchant = make_merchant(community_id=district["a"].id)
    clerk = make_staff("merchant_staff", merchant_id=merchant.id)
    reward = make_reward(of=merchant, points_cost=100)
    _, digits = rewards.create_code(district["a1"].user, reward.id, 1)
    rewards.redeem_code(digits, merchant.id, clerk.id)
    db.session.commit()

    points = dashboard.points_by_community()

    by_name = {c["name"]: (c["outstanding_points"], c["redeemed_points"]) for c in points["communities"]}
    assert by_name == {"甲社区": (200 + 115 + 100 + 150 - 100, 100), "乙社区": (360, 0)}
    assert (points["outstanding_points"], points["redeemed_points"]) == (825, 100)


def test_a_voided_redemption_is_not_counted_as_redeemed(district, make_merchant, make_reward, make_staff):
    merchant = make_merchant(community_id=district["a"].id)
    clerk = make_staff("merchant_staff", merchant_id=merchant.id)
    reward = make_reward(of=merchant, points_cost=100)
    _, digits = rewards.create_code(district["a1"].user, reward.id, 1)
    outcome = rewards.redeem_code(digits, merchant.id, clerk.id)
    rewards.void_redemption(outcome.redemption.id, merchant.id, clerk.id, "顾客退货")
    db.session.commit()

    points = dashboard.points_by_community()

    assert points["redeemed_points"] == 0
    assert points["outstanding_points"] == 925


def test_an_empty_district_has_six_empty_months():
    figures = dashboard.dashboard()

    assert len(figures["months"]) == 6
    assert figures["reduction_g"] == [0] * 6 and figures["households"] == [0] * 6
    assert figures["by_action_type"] == [] and figures["top_communities"] == []
    assert figures["points"]["outstanding_points"] == 0
