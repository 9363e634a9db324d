"""Signed requests for integration tests: a tiny signer and builders for records."""
import json
import time
from datetime import timedelta, timezone

import pytest

from app.auth import sign_request
from app.columns import utcnow
from app.extensions import db
from app.integrations import service as integrations

ACTIONS_PATH = "/api/v1/integrations/actions"
CST = timezone(timedelta(hours=8))


class Signer:
    """A registered integration and its secret, as the device holds them."""

    def __init__(self, integration, secret):
        self.integration, self.id, self.secret = integration, integration.id, secret


def signed_headers(signer, body: bytes, *, path=ACTIONS_PATH, method="POST", timestamp=None, secret=None) -> dict:
    """Headers signing `body` for `path`: the request path, with "?" and the raw query string when the URL has one.

    A signature is accepted once: a test that sends the same request twice and wants both accepted
    passes distinct timestamps (a device re-signs its retries).
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-Integration-Id": signer.id,
        "X-Timestamp": stamp,
        "X-Signature": sign_request(secret or signer.secret, stamp, method, path, body),
    }


def push(client, signer, body, *, url=ACTIONS_PATH, headers=None, **signing):
    """POST records to `url` (/integrations/actions and any query), signed as `signer` for that URL.

    Signing kwargs alter the signature (`path` signs another path or query than the one posted to).
    """
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signing.setdefault("path", url)
    return client.post(url, data=raw, headers={**signed_headers(signer, raw, **signing), **(headers or {})})


def record(external_id, card, *, action_type="recycling", variant="paper", quantity="2", unit="kg",
           occurred_at=None, **extra) -> dict:
    occurred_at = occurred_at or (utcnow() - timedelta(hours=1)).astimezone(CST).isoformat()
    body = {"external_id": external_id, "household_card": card, "action_type": action_type,
            "quantity": quantity, "unit": unit, "occurred_at": occurred_at, **extra}
    if variant is not None:
        body["variant"] = variant
    return body


def card_of(person) -> str:
    return person.user.household.card_number


def balance(client, person) -> int:
    response = client.get("/api/v1/wallet", headers=person.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["balance"]


@pytest.fixture
def make_integration(factor_set):
    def make(kind="device", *, name=None, source=None) -> Signer:
        integration, secret = integrations.create_integration(name=name or f"测试{kind}", kind=kind, source=source)
        db.session.commit()
        return Signer(integration, secret)

    return make


@pytest.fixture
def device(make_integration):
    return make_integration("device")


@pytest.fixture
def operator(make_integration):
    return make_integration("transit_operator")
