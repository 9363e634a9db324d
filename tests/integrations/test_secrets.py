"""Integration secrets: random, encrypted under the data keys, rotated with an overlap, re-encrypted by `keys rotate`."""
import base64
import os
from datetime import timedelta

import pytest

from app import keyring
from app.columns import utcnow
from app.extensions import db
from app.integrations.models import Integration
from tests.integrations.conftest import Signer, balance, card_of, push, record
from tests.integrations.test_routes import actions_of, assert_problem

API = "/api/v1/integrations"


def rotate(client, admin, integration_id, body=None):
    return client.post(f"{API}/{integration_id}/secret", json=body, headers=admin.headers)


def as_signer(device, secret) -> Signer:
    return Signer(device.integration, secret)


def row(integration_id) -> Integration:
    return db.session.get(Integration, integration_id, populate_existing=True)


def new_data_key() -> str:
    return f"k2026b:{base64.b64encode(os.urandom(32)).decode()}"


def put_first(app, monkeypatch, new: str) -> None:
    """The operator puts a new key first in DATA_KEYS, keeping the built-in one after it."""
    monkeypatch.setitem(app.config, "DATA_KEYS", f"{new},{keyring.DEV_DATA_KEYS}")


# ---------------------------------------------------------------- not derived from SECRET_KEY


def test_changing_secret_key_leaves_every_device_signing(app, client, device, resident, monkeypatch):
    monkeypatch.setitem(app.config, "SECRET_KEY", "a-new-secret-key-after-a-leak-0123456789")

    response = push(client, device, record("after-leak", card_of(resident)))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"][0]["status"] == "created"
    assert balance(client, resident) == 200


# ---------------------------------------------------------------- rotation with an overlap


def test_rotation_shows_a_new_secret_once_and_the_old_one_verifies_during_the_overlap(client, admin, device,
                                                                                      resident):
    response = rotate(client, admin, device.id, {"overlap_seconds": 3600})

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == device.id and len(body["secret"]) == 64 and body["secret"] != device.secret
    assert body["previous_secret_expires_at"] is not None
    assert push(client, device, record("old-1", card_of(resident))).get_json()["results"][0]["status"] == "created"
    fresh = as_signer(device, body["secret"])
    assert push(client, fresh, record("new-1", card_of(resident))).get_json()["results"][0]["status"] == "created"
    assert [a.external_id for a in actions_of(device.id)] == ["new-1", "old-1"]
    listed = client.get(API, headers=admin.headers).get_json()["items"]
    assert all("secret" not in item for item in listed)
    assert body["secret"] not in (row(device.id).secret_encrypted or "")


def test_after_the_overlap_only_the_new_secret_verifies(client, admin, device, resident):
    new_secret = rotate(client, admin, device.id, {"overlap_seconds": 3600}).get_json()["secret"]
    stored = row(device.id)
    stored.previous_secret_expires_at = utcnow() - timedelta(seconds=1)  # the overlap has ended
    db.session.commit()

    old = push(client, device, record("late-old", card_of(resident)))
    new = push(client, as_signer(device, new_secret), record("late-new", card_of(resident)))

    assert assert_problem(old, 401, "unauthenticated")["detail"] == "X-Signature does not match"
    assert new.get_json()["results"][0]["status"] == "created"
    assert [a.external_id for a in actions_of(device.id)] == ["late-new"]
    assert balance(client, resident) == 200


def test_an_overlap_of_zero_stops_the_old_secret_at_once(client, admin, device, resident):
    body = rotate(client, admin, device.id, {"overlap_seconds": 0}).get_json()

    assert body["previous_secret_expires_at"] is None
    assert_problem(push(client, device, record("zero-old", card_of(resident))), 401, "unauthenticated")
    assert push(client, as_signer(device, body["secret"]), record("zero-new", card_of(resident))).status_code == 200


def test_without_a_body_the_overlap_is_one_day(client, admin, device):
    before = utcnow()

    response = client.post(f"{API}/{device.id}/secret", headers=admin.headers)

    assert response.status_code == 201, response.get_data(as_text=True)
    until = row(device.id).previous_secret_expires_at
    assert before + timedelta(days=1) <= until <= utcnow() + timedelta(days=1)


def test_a_second_rotation_ends_the_first_overlap(client, admin, device, resident):
    second = rotate(client, admin, device.id).get_json()["secret"]
    third = rotate(client, admin, device.id).get_json()["secret"]

    assert_problem(push(client, device, record("first", card_of(resident))), 401, "unauthenticated")
    assert push(client, as_signer(device, second), record("second", card_of(resident))).status_code == 200
    assert push(client, as_signer(device, third), record("third", card_of(resident))).status_code == 200


@pytest.mark.parametrize("overlap", [604801, -1, "60", 1.5, None])
def test_an_overlap_outside_zero_to_seven_days_is_422(client, admin, device, overlap):
    response = rotate(client, admin, device.id, {"overlap_seconds": overlap})

    assert "overlap_seconds" in assert_problem(response, 422, "validation_error")["errors"]
    assert row(device.id).previous_secret_encrypted is None


def test_rotation_is_for_the_district_admin_of_an_active_integration(client, admin, staff, resident, device):
    assert_problem(rotate(client, staff, device.id), 403, "forbidden")
    assert_problem(rotate(client, resident, device.id), 403, "forbidden")
    assert_problem(rotate(client, admin, "0" * 32), 404, "not_found")
    client.post(f"{API}/{device.id}/deactivate", headers=admin.headers)
    assert_problem(rotate(client, admin, device.id), 409, "invalid_state")


def test_cli_rotate_secret_prints_the_new_secret_and_keeps_the_old_for_the_overlap(app, client, device, resident):
    result = app.test_cli_runner().invoke(args=["integrations", "rotate-secret", device.id,
                                                "--overlap-seconds", "600"])

    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.splitlines() if line.startswith(("X-", "secret")))
    assert lines["X-Integration-Id"].strip() == device.id and "verifies until" in result.output
    new = as_signer(device, lines["secret"].strip())
    assert push(client, new, record("cli-new", card_of(resident))).status_code == 200
    assert push(client, device, record("cli-old", card_of(resident))).status_code == 200


# ---------------------------------------------------------------- keys rotate


def test_keys_rotate_re_encrypts_every_secret_under_the_new_key_and_devices_keep_signing(
        app, client, admin, make_integration, resident, monkeypatch):
    plain, moving, expired = make_integration(name="plain"), make_integration(name="moving"), make_integration(name="x")
    moving_new = rotate(client, admin, moving.id, {"overlap_seconds": 3600}).get_json()["secret"]
    expired_new = rotate(client, admin, expired.id, {"overlap_seconds": 3600}).get_json()["secret"]
    row(expired.id).previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    new = new_data_key()
    put_first(app, monkeypatch, new)

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert "re-encrypted under k2026b: 3 integration secrets" in result.output
    for integration in (plain, moving, expired):
        assert row(integration.id).secret_encrypted.startswith("k2026b:")
    assert row(moving.id).previous_secret_encrypted.startswith("k2026b:")
    assert row(expired.id).previous_secret_encrypted is None  # its overlap had ended: dropped, not re-encrypted
    monkeypatch.setitem(app.config, "DATA_KEYS", new)  # the operator removes the old key
    card = card_of(resident)
    for signer, external_id in ((plain, "p"), (moving, "m-old"), (as_signer(moving, moving_new), "m-new"),
                                (as_signer(expired, expired_new), "x-new")):
        response = push(client, signer, record(external_id, card))
        assert response.get_json()["results"][0]["status"] == "created", external_id
    again = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert "0 integration secrets" in again.output


def test_removing_a_key_before_keys_rotate_is_a_503_and_the_command_says_so(app, client, device, resident,
                                                                            monkeypatch):
    monkeypatch.setitem(app.config, "DATA_KEYS", new_data_key())  # the old key removed before `keys rotate`

    response = push(client, device, record("too-early", card_of(resident)))
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert_problem(response, 503, "data_key_unavailable")
    assert result.exit_code == 1 and "cannot be read with the configured keys" in result.output
    assert actions_of(device.id) == []
