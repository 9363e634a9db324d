"""Campaigns through the HTTP API: drafts, lifecycle, scope, check-ins, receipts, stats, leaderboards, demo."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.campaigns import leaderboard
from app.campaigns.models import Campaign, Checkin
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from tests.activities.conftest import action_body
from tests.campaigns.conftest import API, budget_left, campaign_body, wallet
from tests.conftest import REDIS_URL


@pytest.fixture
def active(client, staff, community, factor_set):
    """An active campaign made through the API: paper ×1.5 + 2, budget 1000."""
    created = client.post(f"{API}/campaigns", json=campaign_body([community.id], bonus_points=2, budget_points=1000),
                          headers=staff.headers)
    assert created.status_code == 201, created.get_json()
    activated = client.post(f"{API}/campaigns/{created.get_json()['id']}/activate", headers=staff.headers)
    assert activated.status_code == 200, activated.get_json()
    return activated.get_json()


def new_code(client, staff, campaign_id, points=10, minutes=30):
    reply = client.post(f"{API}/campaigns/{campaign_id}/checkin-codes", json={"points": points, "valid_minutes": minutes},
                        headers=staff.headers)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


# ---------------------------------------------------------------- drafts and lifecycle


def test_staff_create_a_draft_edit_it_activate_and_end_it(client, staff, community, factor_set):
    created = client.post(f"{API}/campaigns", json=campaign_body([community.id], per_household_cap=50),
                          headers={**staff.headers, "Idempotency-Key": "c-1"})
    campaign_id = created.get_json()["id"]
    edited = client.patch(f"{API}/campaigns/{campaign_id}", json={"multiplier": "2.5", "bonus_points": 3},
                          headers=staff.headers)
    activated = client.post(f"{API}/campaigns/{campaign_id}/activate", headers=staff.headers)
    edit_active = client.patch(f"{API}/campaigns/{campaign_id}", json={"name": "x"}, headers=staff.headers)
    ended = client.post(f"{API}/campaigns/{campaign_id}/end", headers=staff.headers)
    again = client.post(f"{API}/campaigns/{campaign_id}/end", headers=staff.headers)

    assert created.status_code == 201
    body = created.get_json()
    assert body["status"] == "draft" and body["multiplier"] == "1.5" and body["budget_remaining"] == 0
    assert body["action_types"] == ["recycling:paper"] and body["community_ids"] == [community.id]
    assert body["per_household_cap"] == 50
    assert edited.status_code == 200 and edited.get_json()["multiplier"] == "2.5"
    assert activated.status_code == 200
    assert activated.get_json()["status"] == "active" and activated.get_json()["budget_remaining"] == 10_000
    assert edit_active.status_code == 409 and edit_active.get_json()["code"] == "invalid_state"
    assert ended.status_code == 200
    assert ended.get_json()["status"] == "ended" and ended.get_json()["budget_remaining"] == 0
    assert again.status_code == 409 and again.get_json()["code"] == "invalid_state"
    assert ledger.verify() == []


@pytest.mark.parametrize("overrides, field", [
    ({"multiplier": "0.9"}, "multiplier"),
    ({"multiplier": 1.5}, "multiplier"),
    ({"multiplier": "1.2345"}, "multiplier"),
    ({"bonus_points": -1}, "bonus_points"),
    ({"budget_points": 0}, "budget_points"),
    ({"per_household_cap": 0}, "per_household_cap"),
    ({"action_types": ["Recycling"]}, "action_types.0"),
    ({"action_types": ["recycling:gold"]}, "action_types.0"),
    ({"starts_at": "2026-05-01T00:00:00"}, "starts_at"),
    ({"status": "active"}, "status"),
    ({"community_ids": []}, "community_ids"),
])
def test_a_bad_campaign_is_422_naming_the_field(client, staff, community, factor_set, overrides, field):
    body = {**campaign_body([community.id]), **overrides}
    reply = client.post(f"{API}/campaigns", json=body, headers=staff.headers)

    assert reply.status_code == 422, reply.get_json()
    assert field in reply.get_json()["errors"]


def test_end_before_start_or_in_the_past_is_422_on_ends_at(client, staff, community, factor_set):
    now = utcnow()
    backwards = campaign_body([community.id], starts_at=now.isoformat(), ends_at=(now - timedelta(hours=1)).isoformat())
    past = campaign_body([community.id], starts_at=(now - timedelta(days=3)).isoformat(),
                         ends_at=(now - timedelta(days=1)).isoformat())

    for body in (backwards, past):
        reply = client.post(f"{API}/campaigns", json=body, headers=staff.headers)
        assert reply.status_code == 422 and "ends_at" in reply.get_json()["errors"]


def test_staff_of_another_community_are_refused(client, staff, make_staff, make_community, community, active):
    outsider = make_staff(community_ids=[make_community().id])

    create = client.post(f"{API}/campaigns", json=campaign_body([community.id]), headers=outsider.headers)
    replies = [client.post(f"{API}/campaigns/{active['id']}/end", headers=outsider.headers),
               client.get(f"{API}/campaigns/{active['id']}", headers=outsider.headers),
               client.get(f"{API}/campaigns/{active['id']}/stats", headers=outsider.headers),
               client.post(f"{API}/campaigns/{active['id']}/checkin-codes", json={"points": 5, "valid_minutes": 5},
                           headers=outsider.headers)]
    listed = client.get(f"{API}/campaigns", headers=outsider.headers)

    assert create.status_code == 422 and list(create.get_json()["errors"]) == ["community_ids.0"]
    assert [r.status_code for r in replies] == [404] * 4
    assert listed.get_json()["items"] == []


def test_residents_may_not_run_campaigns(client, resident, community, active):
    replies = [client.post(f"{API}/campaigns", json=campaign_body([community.id]), headers=resident.headers),
               client.post(f"{API}/campaigns/{active['id']}/end", headers=resident.headers),
               client.get(f"{API}/campaigns/{active['id']}/stats", headers=resident.headers)]

    assert [r.status_code for r in replies] == [403] * 3


def test_lists_residents_see_active_campaigns_of_their_community_staff_see_all(client, staff, resident,
                                                                              make_resident, make_community,
                                                                              community, active):
    draft = client.post(f"{API}/campaigns", json=campaign_body([community.id], name="草稿"), headers=staff.headers)
    outsider = make_resident(community_id=make_community().id)

    mine = client.get(f"{API}/campaigns", headers=resident.headers).get_json()["items"]
    theirs = client.get(f"{API}/campaigns", headers=outsider.headers).get_json()["items"]
    resident_drafts = client.get(f"{API}/campaigns?status=draft", headers=resident.headers).get_json()["items"]
    everything = client.get(f"{API}/campaigns", headers=staff.headers).get_json()["items"]
    drafts = client.get(f"{API}/campaigns?status=draft", headers=staff.headers).get_json()["items"]
    draft_by_resident = client.get(f"{API}/campaigns/{draft.get_json()['id']}", headers=resident.headers)
    one = client.get(f"{API}/campaigns/{active['id']}", headers=resident.headers)
    outside = client.get(f"{API}/campaigns/{active['id']}", headers=outsider.headers)

    assert [c["id"] for c in mine] == [active["id"]]
    assert theirs == [] and resident_drafts == []
    assert [c["id"] for c in everything] == [draft.get_json()["id"], active["id"]]
    assert [c["status"] for c in drafts] == ["draft"]
    assert draft_by_resident.status_code == 404
    assert one.status_code == 200 and outside.status_code == 404


# ---------------------------------------------------------------- actions, receipts, reversal


def test_approval_shows_the_campaign_part_on_the_action_and_its_receipt(client, staff, resident, active):
    reported = client.post(f"{API}/actions", json=action_body(quantity="0.37"), headers=resident.headers)

    approved = client.post(f"{API}/review/actions/{reported.get_json()['id']}/approve", headers=staff.headers)

    body = approved.get_json()
    assert approved.status_code == 200
    assert (body["base_points"], body["campaign_points"], body["points"]) == (37, 18 + 2, 57)
    assert body["receipt"]["campaigns"] == [{
        "campaign_id": active["id"], "name": active["name"], "multiplier": "1.5", "bonus_points": 2,
        "uncut_points": 20, "points": 20, "cut": None}]
    assert client.get(f"{API}/wallet", headers=resident.headers).get_json()["balance"] == 57
    if REDIS_URL:  # the after-commit job already brought the sorted set up to the award
        assert leaderboard.client().get(leaderboard.keys(active["id"])[1]) == b"1"


def test_reverse_returns_the_part_to_the_budget(client, staff, resident, active):
    reported = client.post(f"{API}/actions", json=action_body(quantity="1"), headers=resident.headers)
    action_id = reported.get_json()["id"]
    client.post(f"{API}/review/actions/{action_id}/approve", headers=staff.headers)

    reversed_ = client.post(f"{API}/review/actions/{action_id}/reverse", json={"reason": "照片不符"},
                            headers=staff.headers)

    assert reversed_.status_code == 200 and reversed_.get_json()["status"] == "reversed"
    assert budget_left(active["id"]) == 1000
    assert wallet(resident.household_id) == 0
    summary = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    assert summary["lifetime_earned"] == 0 and summary["clawback_points"] == 0
    assert ledger.verify() == []


# ---------------------------------------------------------------- check-ins


def test_check_in_once_with_a_code_and_its_qr(client, staff, resident, make_staff, make_community, active):
    code = new_code(client, staff, active["id"], points=25)

    first = client.post(f"{API}/checkins", json={"code": code["code"]},
                        headers={**resident.headers, "Idempotency-Key": "ci-1"})
    replay = client.post(f"{API}/checkins", json={"code": code["code"]},
                         headers={**resident.headers, "Idempotency-Key": "ci-1"})
    second = client.post(f"{API}/checkins", json={"code": code["code"]}, headers=resident.headers)
    png = client.get(code["qr_png_url"], headers=staff.headers)
    other_staff = client.get(code["qr_png_url"], headers=make_staff(community_ids=[make_community().id]).headers)
    listed = client.get(f"{API}/campaigns/{active['id']}/checkin-codes", headers=staff.headers).get_json()

    assert len(code["code"]) == 16 and code["expires_at"]
    assert first.status_code == 201
    assert {"campaign_id": active["id"], "points": 25}.items() <= first.get_json().items()
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert second.status_code == 409 and second.get_json()["code"] == "already_checked_in"
    assert wallet(resident.household_id) == 25 and budget_left(active["id"]) == 975
    assert db.session.scalar(select(func.count()).select_from(Checkin)) == 1
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    assert other_staff.status_code == 404
    assert [c["code"] for c in listed["items"]] == [code["code"]]


def test_the_qr_holds_exactly_the_code(client, staff, active):
    zxingcpp = pytest.importorskip("zxingcpp")
    from io import BytesIO

    from PIL import Image

    code = new_code(client, staff, active["id"])
    png = client.get(code["qr_png_url"], headers=staff.headers).data

    assert [r.text for r in zxingcpp.read_barcodes(Image.open(BytesIO(png)))] == [code["code"]]


def test_a_replayed_code_creation_reveals_the_same_code_without_storing_it(client, staff, active):
    headers = {**staff.headers, "Idempotency-Key": "code-1"}
    body = {"points": 5, "valid_minutes": 10}

    first = client.post(f"{API}/campaigns/{active['id']}/checkin-codes", json=body, headers=headers)
    again = client.post(f"{API}/campaigns/{active['id']}/checkin-codes", json=body, headers=headers)

    from app.idempotency import IdempotencyRecord

    stored = b"".join(r.body or b"" for r in db.session.scalars(select(IdempotencyRecord)))
    assert again.get_json()["code"] == first.get_json()["code"]
    assert first.get_json()["code"].encode() not in stored


def test_check_in_refusals_over_http(client, staff, resident, make_resident, make_community, community, active):
    outsider = make_resident(community_id=make_community().id)
    code = new_code(client, staff, active["id"], points=600)
    client.post(f"{API}/checkins", json={"code": code["code"]}, headers=make_resident().headers)

    outside = client.post(f"{API}/checkins", json={"code": code["code"]}, headers=outsider.headers)
    unknown = client.post(f"{API}/checkins", json={"code": "not a code"}, headers=resident.headers)
    exhausted = client.post(f"{API}/checkins", json={"code": code["code"]}, headers=resident.headers)
    by_staff = client.post(f"{API}/checkins", json={"code": code["code"]}, headers=staff.headers)
    draft = client.post(f"{API}/campaigns", json=campaign_body([community.id]), headers=staff.headers).get_json()
    for_draft = client.post(f"{API}/campaigns/{draft['id']}/checkin-codes", json={"points": 5, "valid_minutes": 5},
                            headers=staff.headers)

    assert (outside.status_code, outside.get_json()["code"]) == (404, "code_not_found")
    assert (unknown.status_code, unknown.get_json()["code"]) == (404, "code_not_found")
    assert (exhausted.status_code, exhausted.get_json()["code"]) == (409, "budget_exhausted")
    assert by_staff.status_code == 403
    assert (for_draft.status_code, for_draft.get_json()["code"]) == (409, "invalid_state")


def test_a_check_in_after_the_end_time_ends_the_campaign_and_is_refused(client, staff, resident, community,
                                                                        factor_set, monkeypatch):
    from app.campaigns import service as campaigns

    body = campaign_body([community.id], ends_at=(utcnow() + timedelta(minutes=10)).isoformat())
    campaign_id = client.post(f"{API}/campaigns", json=body, headers=staff.headers).get_json()["id"]
    client.post(f"{API}/campaigns/{campaign_id}/activate", headers=staff.headers)
    code = new_code(client, staff, campaign_id, minutes=60)
    monkeypatch.setattr(campaigns, "utcnow", lambda: utcnow() + timedelta(minutes=11))

    reply = client.post(f"{API}/checkins", json={"code": code["code"]}, headers=resident.headers)

    assert (reply.status_code, reply.get_json()["code"]) == (409, "invalid_state")
    assert db.session.get(Campaign, campaign_id).status == "ended"
    assert budget_left(campaign_id) == 0


# ---------------------------------------------------------------- stats and leaderboard


def test_stats_and_leaderboard(client, staff, resident, make_resident, active):
    neighbour = make_resident()
    for person, quantity in ((resident, "0.2"), (neighbour, "0.6")):
        reported = client.post(f"{API}/actions", json=action_body(quantity=quantity), headers=person.headers)
        client.post(f"{API}/review/actions/{reported.get_json()['id']}/approve", headers=staff.headers)

    stats = client.get(f"{API}/campaigns/{active['id']}/stats", headers=staff.headers)
    mine = client.get(f"{API}/campaigns/{active['id']}/leaderboard?limit=1", headers=resident.headers)
    as_staff = client.get(f"{API}/campaigns/{active['id']}/leaderboard", headers=staff.headers)
    too_many = client.get(f"{API}/campaigns/{active['id']}/leaderboard?limit=101", headers=staff.headers)

    assert stats.status_code == 200
    assert stats.get_json() == {"participants": 2, "actions": 2, "reduction_g": 800, "points_awarded": 12 + 32,
                                "budget_remaining": 1000 - 44, "checkins": 0}
    board = mine.get_json()
    assert board["items"] == [{"rank": 1, "name_masked": "测**", "points": 32, "mine": False, "household_id": None}]
    assert board["me"] == {"rank": 2, "points": 12}
    assert board["source"] == ("redis" if REDIS_URL else "sql")
    staff_board = as_staff.get_json()
    assert [i["household_id"] for i in staff_board["items"]] == [neighbour.household_id, resident.household_id]
    assert staff_board["me"] is None
    assert too_many.status_code == 422 and "limit" in too_many.get_json()["errors"]


# ---------------------------------------------------------------- demo


def test_seed_demo_adds_one_active_campaign_with_a_check_in_code(app, client):
    first = app.test_cli_runner().invoke(args=["seed-demo"])
    second = app.test_cli_runner().invoke(args=["seed-demo"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    campaigns = db.session.scalars(select(Campaign)).all()
    assert [c.status for c in campaigns] == ["active"]
    line = next(line for line in first.output.splitlines() if line.startswith("campaigns:"))
    code = line.split("check-in code ")[1].split()[0]
    assert code in second.output  # the same live code again
    login = client.post(f"{API}/auth/login", json={"phone": "13900000002", "password": "demo-pass-2026"}).get_json()
    reply = client.post(f"{API}/checkins", json={"code": code},
                        headers={"Authorization": f"Bearer {login['access_token']}"})
    assert reply.status_code == 201 and reply.get_json()["points"] == 20
    assert ledger.verify() == []
