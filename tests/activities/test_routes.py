"""Green actions through the HTTP API: factors, reports, review, appeals, staff logging, cards."""
import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.accounts.models import Household
from app.activities.models import Action, FactorSet
from app.extensions import db
from app.idempotency import IdempotencyRecord
from app.ledger import service as ledger
from tests.activities.conftest import action_body, ago, row, today_local

API = "/api/v1"


def post_action(client, person, key=None, **overrides):
    headers = dict(person.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"{API}/actions", json=action_body(**overrides), headers=headers)


def action_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Action))


# ---------------------------------------------------------------- factors


def test_factors_lists_the_set_in_force_with_every_row(client, factor_set):
    reply = client.get(f"{API}/factors")

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["factor_set"]["code"] == "SJ-2026.1"
    assert body["factor_set"]["effective_from"] == "2026-01-01"
    assert len(body["factors"]) == 21
    paper = next(f for f in body["factors"] if f["variant"] == "paper")
    assert set(paper) >= {"id", "action_type", "variant", "unit", "kgco2e_per_unit", "points_per_unit", "daily_cap",
                          "monthly_cap", "sources", "verifiable", "evidence", "source"}
    assert (paper["kgco2e_per_unit"], paper["points_per_unit"], paper["daily_cap"]) == ("1", "100", "50")
    assert paper["monthly_cap"] is None
    assert paper["sources"] == ["resident", "staff", "device", "import"]
    metro = next(f for f in body["factors"] if f["variant"] == "metro")
    assert metro["kgco2e_per_unit"] == "0.0467"
    walking = next(f for f in body["factors"] if f["action_type"] == "walking")
    assert walking["variant"] is None


def test_factors_without_a_published_set_is_404(client):
    reply = client.get(f"{API}/factors")

    assert reply.status_code == 404
    assert reply.get_json()["code"] == "not_found"


# ---------------------------------------------------------------- factor sets (district admin)


def test_admin_loads_a_draft_from_json_and_publishes_it(client, admin):
    body = {"code": "T-2", "effective_from": today_local().isoformat(), "rows": [row(), row(variant="pruning")]}

    created = client.post(f"{API}/factor-sets", json=body, headers=admin.headers)
    before = client.get(f"{API}/factors")
    published = client.post(f"{API}/factor-sets/T-2/publish", headers=admin.headers)
    again = client.post(f"{API}/factor-sets/T-2/publish", headers=admin.headers)
    replaced = client.post(f"{API}/factor-sets", json=body, headers=admin.headers)
    listed = client.get(f"{API}/factor-sets", headers=admin.headers)

    assert created.status_code == 201, created.get_json()
    assert created.get_json()["status"] == "draft" and created.get_json()["row_count"] == 2
    assert before.status_code == 404
    assert published.status_code == 200 and published.get_json()["status"] == "published"
    assert again.status_code == 409 and again.get_json()["code"] == "invalid_state"
    assert replaced.status_code == 409 and replaced.get_json()["code"] == "invalid_state"
    assert [s["code"] for s in listed.get_json()["items"]] == ["T-2"]
    assert client.get(f"{API}/factors").get_json()["factor_set"]["code"] == "T-2"


def test_factor_set_validation_names_the_row_and_field(client, admin):
    body = {"code": "T-3", "effective_from": "2026-06-01",
            "rows": [row(), row(variant="b"), row(variant="c", kgco2e_per_unit="much"),
                     row(variant="d", sources=["resident", "robot"])]}

    reply = client.post(f"{API}/factor-sets", json=body, headers=admin.headers)

    assert reply.status_code == 422
    errors = reply.get_json()["errors"]
    assert set(errors) == {"rows.2.kgco2e_per_unit", "rows.3.sources.1"}
    assert db.session.scalar(select(func.count()).select_from(FactorSet)) == 0


def test_factor_set_with_a_repeated_row_is_refused_naming_it(client, admin):
    body = {"code": "T-4", "effective_from": "2026-06-01", "rows": [row(), row()]}

    reply = client.post(f"{API}/factor-sets", json=body, headers=admin.headers)

    assert reply.status_code == 422
    assert list(reply.get_json()["errors"]) == ["rows.1.variant"]


def test_admin_loads_a_draft_from_a_csv_body(client, admin):
    from importlib import resources

    text = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8")
    bad = text.replace("recycling,pet,kg,1.15", "recycling,pet,kg,1,15", 1)

    refused = client.post(f"{API}/factor-sets", data=bad.encode(), content_type="text/csv", headers=admin.headers)
    loaded = client.post(f"{API}/factor-sets", data=text.encode(), content_type="text/csv; charset=utf-8",
                         headers=admin.headers)

    assert refused.status_code == 422
    assert list(refused.get_json()["errors"]) == ["rows.3.row"]
    assert refused.get_json()["errors"]["rows.3.row"][0].startswith("line 5:")
    assert loaded.status_code == 201
    assert loaded.get_json()["code"] == "SJ-2026.1" and loaded.get_json()["row_count"] == 21


def test_factor_set_body_must_be_json_or_csv(client, admin):
    malformed = client.post(f"{API}/factor-sets", data=b"{nope", content_type="application/json",
                            headers=admin.headers)
    unknown = client.post(f"{API}/factor-sets", json={"code": "X", "effective_from": "2026-06-01", "rows": [row()],
                                                     "status": "published"}, headers=admin.headers)

    assert malformed.status_code == 400 and malformed.get_json()["code"] == "malformed_json"
    assert unknown.status_code == 422 and "status" in unknown.get_json()["errors"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_factor_set_body_of_another_media_type_is_415_naming_both_it_takes(client, admin, content_type):
    headers = {**admin.headers, **({"Content-Type": content_type} if content_type else {})}

    reply = client.post(f"{API}/factor-sets", data=b"code=X", headers=headers)

    assert reply.status_code == 415 and reply.get_json()["code"] == "unsupported_media_type"
    assert "application/json" in reply.get_json()["detail"] and "text/csv" in reply.get_json()["detail"]


def test_a_csv_body_that_is_not_utf8_is_422(client, admin):
    reply = client.post(f"{API}/factor-sets", data="factor_set,社区".encode("gb18030"), content_type="text/csv",
                        headers=admin.headers)

    assert reply.status_code == 422 and list(reply.get_json()["errors"]) == ["body"]


def test_admin_reads_one_factor_set_with_its_rows(client, admin, factor_set):
    reply = client.get(f"{API}/factor-sets/SJ-2026.1", headers=admin.headers)
    missing = client.get(f"{API}/factor-sets/NOPE", headers=admin.headers)

    assert reply.status_code == 200
    assert reply.get_json()["factor_set"]["status"] == "published"
    assert len(reply.get_json()["factors"]) == 21
    assert missing.status_code == 404


def test_only_district_admins_manage_factor_sets(client, staff, resident):
    for person in (staff, resident):
        assert client.get(f"{API}/factor-sets", headers=person.headers).status_code == 403
        assert client.post(f"{API}/factor-sets/SJ/publish", headers=person.headers).status_code == 403


def test_publishing_a_second_set_on_the_same_day_is_409(client, admin, factor_set):
    body = {"code": "T-5", "effective_from": "2026-01-01", "rows": [row()]}
    client.post(f"{API}/factor-sets", json=body, headers=admin.headers)

    reply = client.post(f"{API}/factor-sets/T-5/publish", headers=admin.headers)

    assert reply.status_code == 409 and reply.get_json()["code"] == "effective_from_taken"


def test_a_later_set_ends_the_earlier_one(client, admin, factor_set):
    later = (today_local() + timedelta(days=10)).isoformat()
    client.post(f"{API}/factor-sets", json={"code": "T-6", "effective_from": later, "rows": [row()]},
                headers=admin.headers)
    client.post(f"{API}/factor-sets/T-6/publish", headers=admin.headers)

    listed = {s["code"]: s for s in client.get(f"{API}/factor-sets", headers=admin.headers).get_json()["items"]}

    assert listed["SJ-2026.1"]["effective_until"] == (today_local() + timedelta(days=9)).isoformat()
    assert listed["T-6"]["effective_until"] is None
    assert client.get(f"{API}/factors").get_json()["factor_set"]["code"] == "SJ-2026.1"


# ---------------------------------------------------------------- reporting


def test_resident_reports_an_action_that_waits_for_review(client, factor_set, resident):
    reply = post_action(client, resident, evidence="photo-123", note="old newspapers")

    assert reply.status_code == 201
    body = reply.get_json()
    assert set(body) >= {"id", "action_type", "variant", "quantity", "credited_quantity", "unit", "occurred_at",
                         "source", "status", "appeal", "reduction_g", "verified", "base_points", "campaign_points",
                         "points", "factor_id", "factor_set", "household_id", "resident_id", "receipt"}
    assert body["status"] == "pending" and body["source"] == "self_reported"
    assert (body["quantity"], body["credited_quantity"], body["points"], body["receipt"]) == ("2.5", None, 0, None)
    assert (body["household_id"], body["resident_id"]) == (resident.household_id, resident.id)
    assert body["factor_set"] == "SJ-2026.1"


def test_self_approvable_report_is_approved_at_once_with_a_receipt(client, factor_set, resident):
    reply = post_action(client, resident, action_type="walking", variant=..., quantity="3.2", unit="km")

    body = reply.get_json()
    assert reply.status_code == 201
    assert (body["status"], body["verified"], body["credited_quantity"]) == ("approved", False, "3.2")
    assert (body["reduction_g"], body["base_points"], body["points"]) == (155, 15, 15)
    receipt = body["receipt"]
    assert receipt["factor_set"] == "SJ-2026.1" and receipt["factor_id"] == body["factor_id"]
    assert (receipt["kgco2e_per_unit"], receipt["points_per_unit"]) == ("0.0487", "4.87")
    assert receipt["cap_applied"] is None and receipt["cap_remaining"] == {"daily": "6.8"}
    assert receipt["campaigns"] == [] and receipt["source"] == "self_reported"
    wallet = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    assert (wallet["balance"], wallet["reduction_g_total"], wallet["verified_reduction_g_total"]) == (15, 155, 0)


@pytest.mark.parametrize("field,overrides", [
    ("action_type", {"action_type": "flying"}),
    ("variant", {"variant": "gold"}),
    ("variant", {"variant": ...}),
    ("unit", {"unit": "g"}),
    ("quantity", {"quantity": "0"}),
    ("quantity", {"quantity": "0.000"}),
    ("quantity", {"quantity": "-1"}),
    ("quantity", {"quantity": "1.2345"}),
    ("quantity", {"quantity": "1234567"}),
    ("quantity", {"quantity": "1e3"}),
    ("quantity", {"quantity": " 1"}),
    ("quantity", {"quantity": 2}),
    ("quantity", {"action_type": "single_use_refusal", "variant": "plastic_bag", "unit": "item", "quantity": "1.5"}),
    ("occurred_at", {"occurred_at": "2026-11-20T10:00:00"}),
    ("occurred_at", {"occurred_at": "yesterday"}),
    ("occurred_at", {"occurred_at": ago(days=31).isoformat()}),
    ("occurred_at", {"occurred_at": lambda: ago(minutes=-10).isoformat()}),  # when the test runs
    ("action_type", {"action_type": ...}),
    ("points", {"points": 1000}),
    ("status", {"status": "approved"}),
    ("note", {"note": "x" * 501}),
])
def test_report_refusals_name_the_field(client, factor_set, resident, field, overrides):
    reply = post_action(client, resident, **{k: v() if callable(v) else v for k, v in overrides.items()})

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "validation_error"
    assert field in reply.get_json()["errors"]
    assert action_count() == 0


@pytest.mark.parametrize("action_type,variant,unit", [
    ("transit", "metro", "km"), ("waste_sorting", "correct_sort", "event"), ("second_hand", "phone", "item"),
])
def test_resident_cannot_report_a_staff_or_device_only_row(client, factor_set, resident, action_type, variant, unit):
    reply = post_action(client, resident, action_type=action_type, variant=variant, unit=unit, quantity="1")

    assert reply.status_code == 422
    assert list(reply.get_json()["errors"]) == ["action_type"]


def test_only_residents_report_actions(client, factor_set, staff):
    reply = post_action(client, staff)

    assert reply.status_code == 403 and reply.get_json()["code"] == "forbidden"


# ---------------------------------------------------------------- idempotency


def test_retry_with_the_same_key_replays_the_first_reply(client, factor_set, resident):
    payload = json.dumps(action_body())
    headers = {**resident.headers, "Idempotency-Key": "k-1"}

    first = client.post(f"{API}/actions", data=payload, headers=headers, content_type="application/json")
    replay = client.post(f"{API}/actions", data=payload, headers=headers, content_type="application/json")

    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    assert action_count() == 1


def test_same_key_with_another_body_is_422(client, factor_set, resident):
    headers = {**resident.headers, "Idempotency-Key": "k-3"}
    client.post(f"{API}/actions", data=json.dumps(action_body(quantity="1")), headers=headers,
                content_type="application/json")

    reply = client.post(f"{API}/actions", data=json.dumps(action_body(quantity="2")), headers=headers,
                        content_type="application/json")

    assert reply.status_code == 422 and reply.get_json()["code"] == "idempotency_key_reused"
    assert action_count() == 1


def test_a_stored_refusal_replays_as_the_same_refusal(client, factor_set, resident):
    headers = {**resident.headers, "Idempotency-Key": "k-4"}
    payload = json.dumps(action_body(action_type="transit", variant="metro", unit="km"))

    first = client.post(f"{API}/actions", data=payload, headers=headers, content_type="application/json")
    replay = client.post(f"{API}/actions", data=payload, headers=headers, content_type="application/json")

    assert first.status_code == 422 and list(first.get_json()["errors"]) == ["action_type"]
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    assert action_count() == 0


def test_a_key_still_running_is_409(client, factor_set, resident):
    payload = json.dumps(action_body())
    scope = hashlib.sha256("\x1f".join([resident.id, "POST", f"{API}/actions", "k-5"]).encode()).hexdigest()
    db.session.add(IdempotencyRecord(scope_hash=scope, request_hash=hashlib.sha256(payload.encode()).hexdigest(),
                                     state="running"))
    db.session.commit()

    reply = client.post(f"{API}/actions", data=payload, headers={**resident.headers, "Idempotency-Key": "k-5"},
                        content_type="application/json")

    assert reply.status_code == 409 and reply.get_json()["code"] == "idempotency_in_progress"
    assert action_count() == 0


# ---------------------------------------------------------------- listing and reading


def test_household_actions_newest_first_in_pages_with_a_status_filter(client, factor_set, resident, make_resident):
    partner = make_resident(invite_code=db.session.get(Household, resident.household_id).invite_code)
    ids = [post_action(client, person).get_json()["id"] for person in (resident, partner, resident)]
    walked = post_action(client, resident, action_type="walking", variant=..., unit="km").get_json()["id"]

    first = client.get(f"{API}/actions?limit=3", headers=partner.headers).get_json()
    second = client.get(f"{API}/actions?limit=3&cursor={first['next_cursor']}", headers=partner.headers).get_json()
    approved = client.get(f"{API}/actions?status=approved", headers=resident.headers).get_json()

    assert [a["id"] for a in first["items"] + second["items"]] == [walked, *reversed(ids)]
    assert second["next_cursor"] is None
    assert [a["id"] for a in approved["items"]] == [walked]
    assert client.get(f"{API}/actions?status=lost", headers=resident.headers).status_code == 422
    assert client.get(f"{API}/actions?limit=101", headers=resident.headers).status_code == 422


def test_an_action_is_visible_to_its_household_its_community_staff_and_admins(
        client, factor_set, resident, make_resident, staff, admin, make_community, make_staff):
    action_id = post_action(client, resident).get_json()["id"]
    stranger = make_resident()
    other_staff = make_staff("community_staff", community_ids=[make_community().id])

    for person, status in ((resident, 200), (staff, 200), (admin, 200), (stranger, 404), (other_staff, 404)):
        reply = client.get(f"{API}/actions/{action_id}", headers=person.headers)
        assert reply.status_code == status
    assert client.get(f"{API}/actions/no-such-id", headers=resident.headers).status_code == 404


# ---------------------------------------------------------------- review


def test_review_queue_shows_my_communities_oldest_first_with_appeals_marked(
        client, factor_set, resident, make_resident, staff, make_community):
    outsider = make_resident(community_id=make_community().id)
    first = post_action(client, resident).get_json()["id"]
    second = post_action(client, resident).get_json()["id"]
    post_action(client, outsider)
    client.post(f"{API}/review/actions/{first}/reject", json={"reason": "blurry"}, headers=staff.headers)
    client.post(f"{API}/actions/{first}/appeal", json={"note": "sharper photo"}, headers=resident.headers)

    queue = client.get(f"{API}/review/actions?status=pending", headers=staff.headers).get_json()
    paged = client.get(f"{API}/review/actions?limit=1", headers=staff.headers).get_json()
    rest = client.get(f"{API}/review/actions?limit=1&cursor={paged['next_cursor']}", headers=staff.headers).get_json()

    assert [(a["id"], a["appeal"]) for a in queue["items"]] == [(first, True), (second, False)]
    assert queue["items"][0]["appeal_note"] == "sharper photo"
    assert queue["items"][0]["reject_reason"] == "blurry"
    assert [a["id"] for a in paged["items"] + rest["items"]] == [first, second]


def test_residents_may_not_review(client, factor_set, resident):
    action_id = post_action(client, resident).get_json()["id"]

    assert client.get(f"{API}/review/actions", headers=resident.headers).status_code == 403
    reply = client.post(f"{API}/review/actions/{action_id}/approve", headers=resident.headers)
    assert reply.status_code == 403 and reply.get_json()["code"] == "forbidden"


def test_staff_of_another_community_get_404_on_review(client, factor_set, resident, make_community, make_staff):
    action_id = post_action(client, resident).get_json()["id"]
    other = make_staff("community_staff", community_ids=[make_community().id])

    for move, body in (("approve", None), ("reject", {"reason": "x"}), ("reverse", {"reason": "x"})):
        reply = client.post(f"{API}/review/actions/{action_id}/{move}", json=body, headers=other.headers)
        assert reply.status_code == 404 and reply.get_json()["code"] == "not_found"
    assert db.session.get(Action, action_id).status == "pending"


def test_approve_refuses_a_body_that_tries_to_set_points(client, factor_set, resident, staff):
    action_id = post_action(client, resident, quantity="2").get_json()["id"]

    reply = client.post(f"{API}/review/actions/{action_id}/approve", json={"points": 99999}, headers=staff.headers)

    assert reply.status_code == 422
    assert reply.get_json()["errors"] == {"points": ["Unknown field."]}
    assert db.session.get(Action, action_id).status == "pending"
    assert client.get(f"{API}/wallet", headers=resident.headers).get_json()["balance"] == 0


def test_approve_credits_the_household_and_a_second_approve_is_409(client, factor_set, resident, staff):
    action_id = post_action(client, resident, quantity="2").get_json()["id"]

    approved = client.post(f"{API}/review/actions/{action_id}/approve", headers=staff.headers)
    again = client.post(f"{API}/review/actions/{action_id}/approve", headers=staff.headers)
    rejected = client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "no"}, headers=staff.headers)

    body = approved.get_json()
    assert approved.status_code == 200
    assert (body["status"], body["verified"], body["points"], body["reduction_g"]) == ("approved", True, 200, 2000)
    assert body["receipt"]["approved_by"] == staff.id
    assert again.status_code == 409 and again.get_json()["code"] == "invalid_state"
    assert rejected.status_code == 409 and rejected.get_json()["code"] == "invalid_state"
    wallet = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    assert (wallet["balance"], wallet["verified_reduction_g_total"]) == (200, 2000)


def test_reject_needs_a_reason_and_only_from_pending(client, factor_set, resident, staff):
    action_id = post_action(client, resident).get_json()["id"]

    blank = client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "  "}, headers=staff.headers)
    done = client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "No evidence"},
                       headers=staff.headers)
    again = client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "No"}, headers=staff.headers)
    approve = client.post(f"{API}/review/actions/{action_id}/approve", headers=staff.headers)
    reverse = client.post(f"{API}/review/actions/{action_id}/reverse", json={"reason": "x"}, headers=staff.headers)

    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    assert done.status_code == 200 and done.get_json()["status"] == "rejected"
    assert done.get_json()["reject_reason"] == "No evidence"
    for reply in (again, approve, reverse):
        assert reply.status_code == 409 and reply.get_json()["code"] == "invalid_state"


def test_reverse_only_an_approved_action_and_only_once(client, factor_set, resident, staff):
    action_id = post_action(client, resident, quantity="1").get_json()["id"]

    pending = client.post(f"{API}/review/actions/{action_id}/reverse", json={"reason": "x"}, headers=staff.headers)
    client.post(f"{API}/review/actions/{action_id}/approve", headers=staff.headers)
    reversed_ = client.post(f"{API}/review/actions/{action_id}/reverse", json={"reason": "double report"},
                            headers=staff.headers)
    twice = client.post(f"{API}/review/actions/{action_id}/reverse", json={"reason": "x"}, headers=staff.headers)

    assert pending.status_code == 409 and pending.get_json()["code"] == "invalid_state"
    assert reversed_.status_code == 200 and reversed_.get_json()["status"] == "reversed"
    assert reversed_.get_json()["reversal_reason"] == "double report"
    assert twice.status_code == 409 and twice.get_json()["code"] == "invalid_state"
    wallet = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    assert (wallet["balance"], wallet["clawback_points"], wallet["reduction_g_total"]) == (0, 0, 0)


def test_reversal_after_spending_claws_back_and_the_next_approval_withholds_it(client, factor_set, resident, staff):
    first = post_action(client, resident, quantity="3").get_json()["id"]
    client.post(f"{API}/review/actions/{first}/approve", headers=staff.headers)  # 300 points
    ledger.transfer(ledger.account_of("household", resident.household_id), ledger.account_of("merchant", "m-1"),
                    250, kind="redemption", ref_type="test", ref_id="r-1")
    db.session.commit()

    client.post(f"{API}/review/actions/{first}/reverse", json={"reason": "fraud"}, headers=staff.headers)
    after_reverse = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    second = post_action(client, resident, quantity="4").get_json()["id"]
    client.post(f"{API}/review/actions/{second}/approve", headers=staff.headers)  # 400 points, 250 withheld
    after_next = client.get(f"{API}/wallet", headers=resident.headers).get_json()

    assert (after_reverse["balance"], after_reverse["clawback_points"]) == (0, 250)
    assert (after_next["balance"], after_next["clawback_points"]) == (150, 0)
    assert ledger.verify() == []


# ---------------------------------------------------------------- appeals


def test_appeal_once_only_and_only_a_rejected_action(client, factor_set, resident, staff, make_resident):
    action_id = post_action(client, resident).get_json()["id"]
    url = f"{API}/actions/{action_id}/appeal"

    too_early = client.post(url, json={"note": "please"}, headers=resident.headers)
    client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "blurry"}, headers=staff.headers)
    stranger = client.post(url, json={"note": "mine"}, headers=make_resident().headers)
    appealed = client.post(url, json={"note": "clearer photo attached"}, headers=resident.headers)
    while_pending = client.post(url, json={"note": "again"}, headers=resident.headers)
    client.post(f"{API}/review/actions/{action_id}/reject", json={"reason": "still blurry"}, headers=staff.headers)
    second = client.post(url, json={"note": "again"}, headers=resident.headers)

    assert too_early.status_code == 409 and too_early.get_json()["code"] == "invalid_state"
    assert stranger.status_code == 404
    assert appealed.status_code == 200
    assert (appealed.get_json()["status"], appealed.get_json()["appeal"]) == ("pending", True)
    assert while_pending.status_code == 409 and while_pending.get_json()["code"] == "already_appealed"
    assert second.status_code == 409 and second.get_json()["code"] == "already_appealed"
    assert db.session.get(Action, action_id).status == "rejected"


# ---------------------------------------------------------------- staff-assisted logging and cards


def test_staff_log_an_action_by_household_card_approved_and_verified(client, factor_set, resident, staff):
    card = db.session.get(Household, resident.household_id).card_number
    printed = " ".join(card[i:i + 4] for i in range(0, len(card), 4))  # as typed from the card
    body = {**action_body(quantity="1.5"), "household_card": printed, "resident_id": resident.id}

    reply = client.post(f"{API}/staff/actions", json=body, headers=staff.headers)

    assert reply.status_code == 201
    action = reply.get_json()
    assert (action["source"], action["status"], action["verified"], action["points"]) == ("staff", "approved",
                                                                                          True, 150)
    assert action["receipt"]["approved_by"] == staff.id
    assert client.get(f"{API}/wallet", headers=resident.headers).get_json()["balance"] == 150


def test_staff_logging_checks_the_card_the_member_and_the_row(client, factor_set, resident, make_resident, staff,
                                                              make_community):
    card = db.session.get(Household, resident.household_id).card_number
    outsider = make_resident(community_id=make_community().id)
    outsider_card = db.session.get(Household, outsider.household_id).card_number

    elsewhere = client.post(f"{API}/staff/actions", json={**action_body(), "household_card": outsider_card},
                            headers=staff.headers)
    unknown = client.post(f"{API}/staff/actions", json={**action_body(), "household_card": "000000000000"},
                          headers=staff.headers)
    wrong_member = client.post(f"{API}/staff/actions", json={**action_body(), "household_card": card,
                                                            "resident_id": outsider.id}, headers=staff.headers)
    device_only = client.post(f"{API}/staff/actions", json={**action_body(action_type="transit", variant="metro",
                                                                          unit="km"), "household_card": card},
                              headers=staff.headers)
    by_resident = client.post(f"{API}/staff/actions", json={**action_body(), "household_card": card},
                              headers=resident.headers)

    assert elsewhere.status_code == 404 and unknown.status_code == 404
    assert wrong_member.status_code == 422 and list(wrong_member.get_json()["errors"]) == ["resident_id"]
    assert device_only.status_code == 422 and list(device_only.get_json()["errors"]) == ["action_type"]
    assert by_resident.status_code == 403
    assert action_count() == 0


def test_household_card_png_holds_the_card_number(client, resident, staff, admin, make_resident, make_community,
                                                  make_staff):
    import io

    import zxingcpp
    from PIL import Image

    card = db.session.get(Household, resident.household_id).card_number
    url = f"{API}/households/{resident.household_id}/card.png"

    mine = client.get(url, headers=resident.headers)

    assert mine.status_code == 200 and mine.mimetype == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(mine.data)))
    assert [d.text for d in decoded] == [card]
    assert client.get(url, headers=staff.headers).status_code == 200
    assert client.get(url, headers=admin.headers).status_code == 200
    assert client.get(url, headers=make_resident().headers).status_code == 404
    other_staff = make_staff("community_staff", community_ids=[make_community().id])
    assert client.get(url, headers=other_staff.headers).status_code == 404
    assert client.get(f"{API}/households/nope/card.png", headers=admin.headers).status_code == 404


def test_a_csv_field_beyond_the_csv_size_limit_is_422_not_500(client, admin):
    from importlib import resources

    text = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8")
    huge = text.replace("conservative)", "conservative) " + "x" * 200_000, 1)

    reply = client.post(f"{API}/factor-sets", data=huge.encode(), content_type="text/csv", headers=admin.headers)

    assert reply.status_code == 422 and list(reply.get_json()["errors"]) == ["body"]
    assert db.session.scalar(select(func.count()).select_from(FactorSet)) == 0
