"""Community staff pages, each through the services the API routes call; outcomes checked through the API."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.activities.models import Action
from app.campaigns.models import Campaign
from app.columns import utcnow
from app.extensions import db
from app.localtime import SHANGHAI
from app.merchants.models import AnomalyFlag
from app.rewards.models import Reward
from tests.activities.conftest import action_body
from tests.console.conftest import csrf_of, post_form, text_of

API = "/api/v1"


def balance(client, person) -> int:
    return client.get(f"{API}/wallet", headers=person.headers).get_json()["balance"]


def report(client, person, **overrides) -> dict:
    reply = client.post(f"{API}/actions", json=action_body(evidence="photo: 旧报纸一捆", **overrides),
                        headers=person.headers)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def local_minute(moment) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def pending(client, factor_set, resident):
    """2.5 kg of paper reported by `resident`, pending review (250 points if approved)."""
    return report(client, resident)


def test_the_queue_shows_each_pending_action_with_its_evidence_and_what_approval_would_credit(console, pending):
    reply = console.get("/console/review")

    page = text_of(reply)
    assert reply.status_code == 200 and f'id="action-{pending["id"]}"' in page
    assert "photo: 旧报纸一捆" in page and "测**" in page
    assert '<dd class="points-if-approved"><strong>250</strong></dd>' in page


def test_approving_from_the_queue_credits_the_household_as_the_wallet_api_shows(client, console, pending, resident):
    before = balance(client, resident)

    reply = post_form(console, f"/console/review/{pending['id']}/approve", page="/console/review")

    assert reply.status_code == 303 and reply.headers["Location"] == "/console/review"
    assert balance(client, resident) == before + 250
    action = client.get(f"{API}/actions/{pending['id']}", headers=resident.headers).get_json()
    assert action["status"] == "approved" and action["receipt"]["points"] == 250
    assert "已入账 250 积分" in text_of(console.get("/console/review"))


def test_an_approved_action_shows_its_frozen_receipt_and_cannot_be_approved_twice(client, console, pending, resident):
    post_form(console, f"/console/review/{pending['id']}/approve", page="/console/review")

    approved = console.get("/console/review?status=approved")
    again = post_form(console, f"/console/review/{pending['id']}/approve", page="/console/review")

    assert "factor_set" in text_of(approved) and "SJ-2026.1" in text_of(approved)
    assert again.status_code == 409 and "text/html" in again.content_type
    assert balance(client, resident) == 250


def test_rejecting_stores_the_reason_the_resident_sees_and_credits_nothing(client, console, pending, resident):
    reply = post_form(console, f"/console/review/{pending['id']}/reject", {"reason": "照片看不清"},
                      page="/console/review")

    assert reply.status_code == 303
    action = client.get(f"{API}/actions/{pending['id']}", headers=resident.headers).get_json()
    assert action["status"] == "rejected" and action["reject_reason"] == "照片看不清"
    assert balance(client, resident) == 0


def test_a_blank_rejection_reason_is_a_422_page_naming_the_field_and_nothing_changes(console, pending):
    reply = post_form(console, f"/console/review/{pending['id']}/reject", {"reason": "   "}, page="/console/review")

    assert reply.status_code == 422 and "<code>reason</code>" in text_of(reply)
    assert db.session.get(Action, pending["id"]).status == "pending"


def test_an_appeal_comes_back_to_the_queue_marked_and_can_be_accepted(client, console, pending, resident):
    post_form(console, f"/console/review/{pending['id']}/reject", {"reason": "重量不对"}, page="/console/review")
    client.post(f"{API}/actions/{pending['id']}/appeal", json={"note": "有收据"}, headers=resident.headers)

    queue = text_of(console.get("/console/review"))
    accepted = post_form(console, f"/console/review/{pending['id']}/approve", page="/console/review")

    assert "申诉" in queue and "有收据" in queue and "重量不对" in queue
    assert accepted.status_code == 303 and balance(client, resident) == 250


def test_an_appeal_can_be_rejected_again_with_a_new_reason(client, console, pending, resident):
    post_form(console, f"/console/review/{pending['id']}/reject", {"reason": "重量不对"}, page="/console/review")
    client.post(f"{API}/actions/{pending['id']}/appeal", json={"note": "有收据"}, headers=resident.headers)

    post_form(console, f"/console/review/{pending['id']}/reject", {"reason": "收据日期不符"}, page="/console/review")

    action = client.get(f"{API}/actions/{pending['id']}", headers=resident.headers).get_json()
    assert action["status"] == "rejected" and action["reject_reason"] == "收据日期不符" and action["appeal"] is True


def test_staff_of_another_community_neither_see_nor_decide_the_action(app, client, pending, make_community, make_staff):
    from tests.console.conftest import console_login

    other = make_staff(community_ids=[make_community().id])
    outsider = app.test_client()
    console_login(outsider, other.user.phone)

    assert pending["id"] not in text_of(outsider.get("/console/review"))
    reply = post_form(outsider, f"/console/review/{pending['id']}/approve", page="/console/review")
    assert reply.status_code == 404 and db.session.get(Action, pending["id"]).status == "pending"


def test_logging_by_card_goes_through_the_staff_path_and_is_credited_at_once(client, console, factor_set, resident):
    card = resident.user.household.card_number
    typed = " ".join(card[i:i + 4] for i in range(0, len(card), 4))

    reply = post_form(console, "/console/log", {"household_card": typed, "factor": "recycling|paper|kg",
                                                "quantity": "1.5", "occurred_at": local_minute(utcnow()),
                                                "note": "社区回收点称重"})

    assert reply.status_code == 303
    action = db.session.scalar(select(Action).where(Action.household_id == resident.household_id))
    assert (action.source, action.status, action.points, action.note) == ("staff", "approved", 150, "社区回收点称重")
    assert balance(client, resident) == 150
    assert "150 积分" in text_of(console.get("/console/log"))


def test_logging_by_an_unknown_card_or_a_bad_quantity_is_refused_with_the_reason(console, factor_set, resident):
    unknown = post_form(console, "/console/log", {"household_card": "000000000000", "factor": "recycling|paper|kg",
                                                  "quantity": "1", "occurred_at": local_minute(utcnow())})
    bad = post_form(console, "/console/log", {"household_card": resident.user.household.card_number,
                                              "factor": "recycling|paper|kg", "quantity": "-1",
                                              "occurred_at": local_minute(utcnow())})

    assert unknown.status_code == 404 and "text/html" in unknown.content_type
    assert bad.status_code == 422 and "<code>quantity</code>" in text_of(bad)
    assert db.session.scalar(select(Action).where(Action.household_id == resident.household_id)) is None


def test_the_card_page_lays_out_every_household_of_the_community_with_its_qr_image(console, resident, make_resident):
    second = make_resident()

    page = text_of(console.get("/console/cards"))
    image = console.get(f"/console/cards/{resident.household_id}.png")

    for person in (resident, second):
        assert f'data-card="{person.user.household.card_number}"' in page
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_card_image_of_another_community_is_not_found(console, make_community, make_resident):
    stranger = make_resident(community_id=make_community().id)

    assert console.get(f"/console/cards/{stranger.household_id}.png").status_code == 404


def campaign_form(community, **overrides) -> dict:
    now = utcnow()
    form = {"name": "旧衣回收周", "community_ids": community.id, "action_types": "recycling:paper",
            "starts_at": local_minute(now - timedelta(minutes=5)), "ends_at": local_minute(now + timedelta(days=7)),
            "multiplier": "1.5", "bonus_points": "5", "budget_points": "1000"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_a_campaign_is_created_as_a_draft_then_activated_and_ended(client, console, community, factor_set, staff):
    created = post_form(console, "/console/campaigns", campaign_form(community))

    assert created.status_code == 303
    campaign = db.session.scalar(select(Campaign).where(Campaign.name == "旧衣回收周"))
    assert campaign.status == "draft" and campaign.budget_points == 1000 and campaign.multiplier == Decimal("1.5")
    page = f"/console/campaigns/{campaign.id}"

    activated = post_form(console, f"{page}/activate", page=page)
    view = client.get(f"{API}/campaigns/{campaign.id}", headers=staff.headers).get_json()
    assert activated.status_code == 303 and view["status"] == "active" and view["budget_remaining"] == 1000

    ended = post_form(console, f"{page}/end", page=page)
    view = client.get(f"{API}/campaigns/{campaign.id}", headers=staff.headers).get_json()
    assert ended.status_code == 303 and view["status"] == "ended" and view["budget_remaining"] == 0


def test_a_campaign_form_without_a_budget_names_the_field_and_creates_nothing(console, community, factor_set):
    reply = post_form(console, "/console/campaigns", campaign_form(community, budget_points=None))

    assert reply.status_code == 422 and "<code>budget_points</code>" in text_of(reply)
    assert db.session.scalar(select(Campaign)) is None


def test_an_active_campaign_counts_approvals_in_its_live_stats_and_leaderboard(client, console, community,
                                                                               factor_set, resident):
    post_form(console, "/console/campaigns",
              campaign_form(community, starts_at=local_minute(utcnow() - timedelta(hours=3))))
    campaign = db.session.scalar(select(Campaign))
    page = f"/console/campaigns/{campaign.id}"
    post_form(console, f"{page}/activate", page=page)
    action = report(client, resident)

    post_form(console, f"/console/review/{action['id']}/approve", page="/console/review")

    shown = text_of(console.get(page))
    assert '<dd class="participants">1</dd>' in shown
    assert '<dd class="budget-left">870</dd>' in shown  # 250 × 0.5 + 5 = 130 paid from 1000
    assert balance(client, resident) == 380


def test_a_check_in_code_is_shown_big_on_the_projector_and_residents_can_use_it(client, console, community,
                                                                              factor_set, resident):
    post_form(console, "/console/campaigns", campaign_form(community))
    campaign = db.session.scalar(select(Campaign))
    page = f"/console/campaigns/{campaign.id}"
    post_form(console, f"{page}/activate", page=page)

    made = post_form(console, f"{page}/codes", {"points": "20", "valid_minutes": "30"}, page=page)
    projector = console.get(made.headers["Location"])
    newest = console.get(f"{page}/projector")

    html = text_of(projector)
    code = html.split('id="checkin-code">')[1].split("<")[0].replace(" ", "")
    assert len(code) == 16 and '<meta http-equiv="refresh"' in html and code in text_of(newest).replace(" ", "")
    checked = client.post(f"{API}/checkins", json={"code": code}, headers=resident.headers)
    assert checked.status_code == 201 and balance(client, resident) == 20


def test_the_merchant_page_lists_rewards_and_staff_can_publish_one(console, merchant, reward):
    page = text_of(console.get("/console/merchants"))

    created = post_form(console, f"/console/merchants/{merchant.id}/rewards",
                        {"name": "布袋", "points_cost": "80", "stock": "20", "per_household_limit": "2"},
                        page="/console/merchants")

    assert merchant.name in page and reward.name in page
    assert created.status_code == 303
    stored = db.session.scalar(select(Reward).where(Reward.name == "布袋"))
    assert (stored.merchant_id, stored.points_cost, stored.stock, stored.per_household_limit) == (merchant.id, 80, 20, 2)


def test_anomaly_flags_are_listed_and_resolved_with_a_note(console, merchant, resident, community):
    flag = AnomalyFlag(household_id=resident.household_id, merchant_id=merchant.id, community_id=community.id,
                       day=utcnow().astimezone(SHANGHAI).date(), redemptions=7)
    db.session.add(flag)
    db.session.commit()

    listed = text_of(console.get("/console/anomalies"))
    reply = post_form(console, f"/console/anomalies/{flag.id}/resolve", {"note": "核实为家庭聚会"},
                      page="/console/anomalies")
    again = post_form(console, f"/console/anomalies/{flag.id}/resolve", {"note": "再次"}, page="/console/anomalies")

    assert f'id="flag-{flag.id}"' in listed and resident.user.household.card_number in listed
    assert reply.status_code == 303 and again.status_code == 409
    db.session.refresh(flag)
    assert flag.resolved_at is not None and flag.resolution_note == "核实为家庭聚会"


def test_every_staff_page_opens_in_both_languages(app, console):
    for endpoint, _ in __import__("app.console.pages", fromlist=["NAV"]).NAV["community_staff"]:
        with app.test_request_context():
            from flask import url_for

            path = url_for(endpoint)
        for lang in ("zh", "en"):
            reply = console.get(f"{path}?lang={lang}")
            assert reply.status_code == 200, (path, lang)


@pytest.mark.parametrize("row_id", ["\ud800", "a\x00b", "x" * 300])
def test_a_forged_page_cursor_is_a_422_page_not_a_500(console, row_id):
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", row_id]).encode()).decode()

    reply = console.get(f"/console/review?cursor={cursor}")

    assert reply.status_code == 422 and "text/html" in reply.content_type
