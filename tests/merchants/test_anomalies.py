"""Community staff close anomaly flags with a note, and list open or resolved ones."""
import pytest
from sqlalchemy import select

from app.extensions import db
from app.merchants.models import AnomalyFlag

API = "/api/v1"


def _redeem(client, clerk, code):
    return client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers)


@pytest.fixture
def flag(client, clerk, resident, reward, fund, get_code):
    """An open flag: the resident redeemed 4 times at the merchant today."""
    fund(resident.household_id, 5000)
    for _ in range(4):
        assert _redeem(client, clerk, get_code(resident, reward)["code"]).status_code == 201
    return db.session.scalars(select(AnomalyFlag)).one()


def _resolve(client, person, flag_id, note="家里办喜事，正常", **headers):
    return client.post(f"{API}/merchant-anomalies/{flag_id}/resolve", json={"note": note},
                       headers={**person.headers, **headers})


def test_staff_resolve_a_flag_with_a_note_once(client, staff, flag):
    reply = _resolve(client, staff, flag.id)
    again = _resolve(client, staff, flag.id, note="再看一次")

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["id"] == flag.id and body["state"] == "resolved"
    assert body["resolved_by"] == staff.id and body["note"] == "家里办喜事，正常" and body["resolved_at"]
    assert again.status_code == 409 and again.get_json()["code"] == "invalid_state"
    stored = db.session.scalar(select(AnomalyFlag).where(AnomalyFlag.id == flag.id)
                               .execution_options(populate_existing=True))
    assert stored.resolution_note == "家里办喜事，正常" and stored.resolved_by == staff.id


def test_a_retry_with_the_same_key_replays_the_resolution(client, staff, flag):
    first = _resolve(client, staff, flag.id, **{"Idempotency-Key": "resolve-1"})
    retry = _resolve(client, staff, flag.id, **{"Idempotency-Key": "resolve-1"})

    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()


def test_the_list_filters_open_and_resolved_flags(client, staff, admin, flag):
    def listed(person, state=None):
        query = {"state": state} if state else {}
        reply = client.get(f"{API}/merchant-anomalies", query_string=query, headers=person.headers)
        assert reply.status_code == 200
        return [(f["id"], f["state"]) for f in reply.get_json()["items"]]

    assert listed(staff, "open") == [(flag.id, "open")] and listed(staff, "resolved") == []
    _resolve(client, staff, flag.id)

    assert listed(staff, "open") == [] and listed(staff, "resolved") == [(flag.id, "resolved")]
    assert listed(staff) == [(flag.id, "resolved")] and listed(admin, "resolved") == [(flag.id, "resolved")]
    assert client.get(f"{API}/merchant-anomalies?state=closed", headers=staff.headers).status_code == 422


def test_staff_of_other_communities_get_404_and_other_roles_403(client, flag, make_staff, make_community, clerk,
                                                                admin, resident):
    stranger = make_staff("community_staff", community_ids=[make_community().id])

    assert _resolve(client, stranger, flag.id).status_code == 404
    assert _resolve(client, stranger, "no-such-flag").status_code == 404
    assert [_resolve(client, p, flag.id).status_code for p in (clerk, admin, resident)] == [403, 403, 403]
    assert db.session.get(AnomalyFlag, flag.id).resolved_at is None


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}, {"note": "x" * 501}, {"note": "ok", "by": "me"}])
def test_a_resolution_needs_a_note(client, staff, flag, body):
    reply = client.post(f"{API}/merchant-anomalies/{flag.id}/resolve", json=body, headers=staff.headers)

    assert reply.status_code == 422 and reply.get_json()["code"] == "validation_error"


def test_a_burst_that_goes_on_after_resolution_opens_the_flag_again(client, staff, clerk, resident, reward, get_code,
                                                                     flag):
    _resolve(client, staff, flag.id)

    _redeem(client, clerk, get_code(resident, reward)["code"])

    reopened = db.session.scalar(select(AnomalyFlag).where(AnomalyFlag.id == flag.id)
                                 .execution_options(populate_existing=True))
    assert reopened.redemptions == 5 and reopened.resolved_at is None
    assert _resolve(client, staff, flag.id, note="又来了，已联系").status_code == 200
