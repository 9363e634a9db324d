"""Each test-client request runs in its own app context, as under a real server: nothing in `g` carries over."""
from flask import g

from app.accounts.models import Household
from app.extensions import db
from tests.integrations.conftest import card_of, make_integration, push, record  # noqa: F401  (a fixture)


def test_an_anonymous_request_after_a_logged_in_one_is_refused(client, resident):
    assert client.get("/api/v1/me", headers=resident.headers).status_code == 200

    response = client.get("/api/v1/me")

    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthenticated"


def test_a_request_leaves_nothing_in_the_test_bodys_g(client, resident):
    client.get("/api/v1/me", headers=resident.headers)

    assert g.get("current_user") is None and g.get("session_id") is None


def test_a_signed_request_after_a_residents_request_is_scoped_to_its_own_integration(
        client, resident, make_integration):
    """The Idempotency-Key scope is the caller: a resident's login must not become a device's caller."""
    bins, scales = make_integration("device"), make_integration("device")
    assert client.get("/api/v1/wallet", headers=resident.headers).status_code == 200
    key = {"Idempotency-Key": "k-1"}

    first = push(client, bins, record("bin-1", card_of(resident)), headers=key)
    other = push(client, scales, record("scale-1", card_of(resident)), headers=key)

    assert first.status_code == other.status_code == 200, other.get_data(as_text=True)
    assert other.headers.get("Idempotent-Replayed") is None
    assert other.get_json()["results"][0]["status"] == "created"


def test_the_test_body_sees_what_a_request_committed(client, resident):
    household = db.session.get(Household, resident.household_id)
    before = household.invite_code

    response = client.post("/api/v1/households/invite-code", headers=resident.headers)

    assert response.status_code == 200
    assert household.invite_code == response.get_json()["invite_code"] != before
