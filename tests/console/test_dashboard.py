"""The district dashboard's figures, from known actions and redemptions."""
from datetime import date, timedelta

from app.district import dashboard
from app.extensions import db
from app.rewards import service as rewards
from tests.console.district_data import district, mid_month, record, redeemed_in_a  # noqa: F401  fixtures
from tests.rewards.builders import *  # noqa: F401,F403  make_merchant, make_reward


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


def test_points_outstanding_and_redeemed_by_community(district, redeemed_in_a):
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
