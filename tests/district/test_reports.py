"""The liability view and the summary, through the API."""
from datetime import timedelta

from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from tests.district.conftest import API, recount, today


def test_liability_shows_outstanding_and_expiring_points_by_community(client, admin, households, make_community,
                                                                     fund):
    other = make_community()
    here, there = households(2), households(1, community_id=other.id)
    fund(here[0].household_id, 300)
    fund(here[1].household_id, 200, expires_at=utcnow() + timedelta(days=30))
    fund(there[0].household_id, 50, expires_at=utcnow() + timedelta(days=200))

    reply = client.get(f"{API}/district/liability", headers=admin.headers)

    assert reply.status_code == 200
    body = reply.get_json()
    rows = {c["community_id"]: c for c in body["communities"]}
    community_id = here[0].user.household.community_id
    assert rows[community_id]["outstanding_points"] == 500 and rows[community_id]["expiring_90d_points"] == 200
    assert rows[community_id]["households"] == 2
    assert rows[other.id]["outstanding_points"] == 50 and rows[other.id]["expiring_90d_points"] == 0
    assert body["outstanding_points"] == 550 and body["expiring_90d_points"] == 200


def test_the_redemption_rate_is_redeemed_over_earned_in_basis_points(client, admin, resident, reward, clerk, fund,
                                                                     get_code):
    fund(resident.household_id, 300)
    ledger.award(resident.household_id, 100, kind="action", ref_type="test", ref_id="a1")
    db.session.commit()
    code = get_code(resident, reward)["code"]
    assert client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers).status_code == 201

    rate = client.get(f"{API}/district/liability", headers=admin.headers).get_json()["redemption_90d"]

    assert rate == {"earned_points": 400, "redeemed_points": 100, "rate_bp": 2500, "rate": "0.2500"}


def test_no_earnings_give_no_rate_rather_than_a_division_by_zero(client, admin):
    rate = client.get(f"{API}/district/liability", headers=admin.headers).get_json()["redemption_90d"]

    assert rate["rate_bp"] is None and rate["rate"] is None


def test_campaign_budgets_show_what_is_committed_and_what_was_spent(client, admin, resident):
    campaign = ledger.account_of("campaign", "c-1")
    wallet = ledger.account_of("household", resident.household_id)
    ledger.transfer(ledger.system_account("issuance", "c-1"), campaign, 1000, kind="campaign_funding",
                    ref_type="campaign", ref_id="c-1")
    ledger.transfer(campaign, wallet, 120, kind="campaign_bonus", ref_type="action", ref_id="a")
    ledger.transfer(wallet, campaign, 20, kind="action_reversal", ref_type="action", ref_id="a")
    db.session.commit()

    campaigns = client.get(f"{API}/district/liability", headers=admin.headers).get_json()["campaigns"]

    assert campaigns["committed_points"] == 900 and campaigns["spent_points"] == 100
    assert campaigns["items"] == [{"campaign_id": "c-1", "committed_points": 900, "spent_points": 100}]
    assert ledger.verify() == []


def test_the_summary_gives_reductions_and_households_by_month_and_action_type(client, admin, households, approve):
    for index, person in enumerate(households(3)):
        approve(person, 0)
        approve(person, 31 + index)
        approve(person, 5, verified=False)
    period_from = today() - timedelta(days=60)

    reply = client.get(f"{API}/district/summary?period_from={period_from}&period_to={today()}",
                       headers=admin.headers)

    assert reply.status_code == 200
    body = reply.get_json()
    expected = recount(period_from, today(), ["month", "action_type"])
    assert {(i["month"], i["action_type"]): {k: i[k] for k in ("actions", "households", "reduction_g",
                                                                "verified_reduction_g", "points")}
            for i in body["items"]} == expected
    assert body["totals"]["households"] == 3 and body["totals"]["actions"] == 9
    bad = client.get(f"{API}/district/summary?period_from={today()}", headers=admin.headers)
    assert bad.status_code == 422 and "period_to" in bad.get_json()["errors"]
