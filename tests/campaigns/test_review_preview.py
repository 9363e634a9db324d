"""The review queue's points_if_approved includes what active campaigns would add, cut as approval cuts."""
from tests.activities.test_preview import post_action, queue
from tests.campaigns.conftest import API, budget_left


def test_points_if_approved_includes_the_campaign_part_cut_to_the_budget(client, resident, staff, make_campaign):
    campaign = make_campaign(multiplier="1.5", bonus_points=10, budget_points=100)
    pending = post_action(client, resident, quantity="2.5")  # 250 base points: 125 + 10 uncut, 100 left in budget

    review = queue(client, staff)["items"][0]["review"]

    assert review["receipt_preview"]["base_points"] == 250
    assert review["receipt_preview"]["campaign_points"] == 100
    assert review["points_if_approved"] == review["receipt_preview"]["points"] == 350
    assert budget_left(campaign.id) == 100  # the preview took nothing
    approved = client.post(f"{API}/review/actions/{pending['id']}/approve", headers=staff.headers).get_json()
    assert approved["points"] == review["points_if_approved"]


def test_points_if_approved_respects_the_households_campaign_cap(client, resident, staff, make_campaign):
    make_campaign(multiplier="2", per_household_cap=40)
    pending = post_action(client, resident, quantity="1")  # 100 base, 100 uncut, 40 left of the cap

    review = queue(client, staff)["items"][0]["review"]

    assert review["points_if_approved"] == 140
    approved = client.post(f"{API}/review/actions/{pending['id']}/approve", headers=staff.headers).get_json()
    assert approved["points"] == 140
