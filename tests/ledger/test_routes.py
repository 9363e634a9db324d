"""The household wallet through the HTTP API."""
import base64
import json

import pytest

from app.columns import new_id
from app.extensions import db
from app.ledger import service as ledger


def award(household_id, amount, kind="action"):
    ledger.award(household_id, amount, kind=kind, ref_type="action", ref_id=new_id())


def test_wallet_shows_the_household_balance(client, resident):
    award(resident.household_id, 70)
    merchant = ledger.account_of("merchant", new_id())
    wallet = ledger.account_of("household", resident.household_id)
    ledger.transfer(wallet, merchant, 20, kind="redemption", ref_type="redemption", ref_id="r1")
    db.session.commit()

    response = client.get("/api/v1/wallet", headers=resident.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"household_id", "balance", "lifetime_earned", "lifetime_redeemed", "clawback_points",
                         "reduction_g_total", "verified_reduction_g_total", "expiring_30d"}
    assert (body["household_id"], body["balance"]) == (resident.household_id, 50)
    assert (body["lifetime_earned"], body["lifetime_redeemed"], body["clawback_points"]) == (70, 20, 0)
    assert all(isinstance(body[k], int) for k in body if k != "household_id")


def test_household_members_share_one_wallet(client, resident, make_resident):
    partner = make_resident(invite_code=resident.user.household.invite_code)
    award(resident.household_id, 15)
    db.session.commit()

    body = client.get("/api/v1/wallet", headers=partner.headers).get_json()

    assert (body["household_id"], body["balance"]) == (resident.household_id, 15)


def test_wallet_is_for_residents_only(client, staff):
    response = client.get("/api/v1/wallet", headers=staff.headers)

    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"


def test_wallet_needs_a_token(client):
    assert client.get("/api/v1/wallet").status_code == 401


def test_wallet_entries_page_newest_first(client, resident, make_resident):
    for amount in range(1, 6):
        award(resident.household_id, amount)
    award(make_resident().household_id, 99)  # another household's entry never shows
    db.session.commit()

    first = client.get("/api/v1/wallet/entries?limit=2", headers=resident.headers).get_json()
    second = client.get(f"/api/v1/wallet/entries?limit=2&cursor={first['next_cursor']}",
                        headers=resident.headers).get_json()
    third = client.get(f"/api/v1/wallet/entries?limit=2&cursor={second['next_cursor']}",
                       headers=resident.headers).get_json()

    items = first["items"] + second["items"] + third["items"]
    assert third["next_cursor"] is None
    assert sorted(e["amount"] for e in items) == [1, 2, 3, 4, 5]
    assert len({e["id"] for e in items}) == 5
    keys = [(e["created_at"], e["id"]) for e in items]
    assert keys == sorted(keys, reverse=True)
    entry = items[0]
    assert set(entry) == {"id", "amount", "kind", "ref", "balance_after", "created_at"}
    assert entry["kind"] == "action" and entry["ref"].startswith("action:")


def test_wallet_entries_refuse_a_bad_cursor_and_limit(client, resident):
    bad_cursor = client.get("/api/v1/wallet/entries?cursor=not-a-cursor", headers=resident.headers)
    bad_limit = client.get("/api/v1/wallet/entries?limit=101", headers=resident.headers)

    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.get_json()["errors"]
    assert bad_limit.status_code == 422 and "limit" in bad_limit.get_json()["errors"]


def forged_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", [
    ["2026-01-01T00:00:00", "abc"],                       # no offset
    ["9999-12-31T23:59:59.999999-23:59", "abc"],          # beyond the last UTC moment
    ["0001-01-01T00:00:00+14:00", "abc"],                 # before the first
    [1, 2], {"a": 1}, "ab", None,
    ["2026-01-01T00:00:00+00:00", "\ud800"],            # an id the database driver cannot encode
    ["2026-01-01T00:00:00+00:00", "a\x00b"],            # nor this one
    ["2026-01-01T00:00:00+00:00", 12345],                # ids are strings
    ["2026-01-01T00:00:00+00:00", "x" * 65],             # and short
])
def test_forged_cursors_are_422_on_cursor(client, resident, value):
    response = client.get(f"/api/v1/wallet/entries?cursor={forged_cursor(value)}", headers=resident.headers)

    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]


def test_a_cursor_with_an_offset_is_read_in_utc(client, resident):
    award(resident.household_id, 5)
    db.session.commit()

    response = client.get(f"/api/v1/wallet/entries?cursor={forged_cursor(['2999-01-01T08:00:00+08:00', 'f' * 32])}",
                          headers=resident.headers)

    assert response.status_code == 200
    assert [e["amount"] for e in response.get_json()["items"]] == [5]
