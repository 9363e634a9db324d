"""Parks: transfers of batch sub-ranges, retirements lowest serials first, statements, inventory, scope."""
import pytest

from app.district.models import Park
from app.extensions import db
from tests.district.conftest import API, issue, today
from tests.fixtures import PASSWORD, next_phone


@pytest.fixture
def make_batch(client, admin, households, approve):
    """An issued batch of `grams` (a multiple of 1000) in a fresh household of the fixture community."""

    def make(kg: int):
        person = households(1)[0]
        approve(person, 0, quantity=str(kg))
        reply = issue(client, admin, person.user.household.community_id, today(), today())
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()

    return make


def _transfer(client, who, park_id, batch_id, grams):
    return client.post(f"{API}/parks/{park_id}/transfers", json={"batch_id": batch_id, "quantity_g": grams},
                       headers=who.headers)


def _retire(client, who, park_id, grams, **extra):
    return client.post(f"{API}/parks/{park_id}/retirements",
                       json={"quantity_g": grams, "purpose": "抵消2026年度排放", **extra}, headers=who.headers)


def test_an_admin_opens_a_park_and_a_name_is_taken_once(client, admin):
    first = client.post(f"{API}/parks", json={"name": "松江经开区"}, headers=admin.headers)
    again = client.post(f"{API}/parks", json={"name": "松江经开区"}, headers=admin.headers)
    blank = client.post(f"{API}/parks", json={"name": "  "}, headers=admin.headers)

    assert first.status_code == 201
    assert first.get_json()["name"] == "松江经开区" and first.get_json()["available_g"] == 0
    assert again.status_code == 409 and again.get_json()["code"] == "park_name_taken"
    assert blank.status_code == 422 and "name" in blank.get_json()["errors"]


def test_transfers_take_contiguous_sub_ranges_from_the_lowest_untransferred_serial(client, admin, park, make_park,
                                                                                make_batch):
    batch = make_batch(5)
    other = make_park()

    first = _transfer(client, admin, park.id, batch["id"], 2000)
    second = _transfer(client, admin, other.id, batch["id"], 2500)
    over = _transfer(client, admin, park.id, batch["id"], 501)
    rest = _transfer(client, admin, park.id, batch["id"], 500)

    assert first.status_code == second.status_code == rest.status_code == 201
    assert (first.get_json()["serial_from"], first.get_json()["serial_to"]) == (batch["serial_from"],
                                                                              batch["serial_from"] + 1999)
    assert second.get_json()["serial_from"] == batch["serial_from"] + 2000
    assert rest.get_json()["serial_to"] == batch["serial_to"] and rest.get_json()["batch_available_g"] == 0
    assert over.status_code == 409 and over.get_json()["code"] == "exceeds_available"
    assert over.get_json()["available_g"] == 500
    assert client.get(f"{API}/reduction-batches/{batch['id']}", headers=admin.headers).get_json()["available_g"] == 0


def test_retirements_take_the_lowest_serials_first_and_the_statement_adds_up(client, admin, park, make_batch):
    a, b = make_batch(3), make_batch(2)
    _transfer(client, admin, park.id, b["id"], 2000)
    _transfer(client, admin, park.id, a["id"], 1000)

    first = _retire(client, admin, park.id, 1500, beneficiary="松江经开区")
    too_much = _retire(client, admin, park.id, 1501)
    second = _retire(client, admin, park.id, 1500)
    none_left = _retire(client, admin, park.id, 1)

    assert first.status_code == second.status_code == 201
    ranges = first.get_json()["ranges"]
    assert ranges == [{"batch_id": a["id"], "serial_from": a["serial_from"], "serial_to": a["serial_from"] + 999,
                       "quantity_g": 1000, "serial_label": ranges[0]["serial_label"]},
                      {"batch_id": b["id"], "serial_from": b["serial_from"], "serial_to": b["serial_from"] + 499,
                       "quantity_g": 500, "serial_label": ranges[1]["serial_label"]}]
    assert first.get_json()["beneficiary"] == "松江经开区"
    assert too_much.status_code == 409 and too_much.get_json()["code"] == "exceeds_available"
    assert none_left.status_code == 409 and none_left.get_json()["code"] == "exceeds_available"
    statement = client.get(f"{API}/parks/{park.id}/statement", headers=admin.headers).get_json()
    assert (statement["received_g"], statement["retired_g"], statement["available_g"]) == (3000, 3000, 0)
    for entry in statement["batches"]:
        assert entry["received_g"] == entry["retired_g"] + entry["available_g"]
        assert sum(r["quantity_g"] for r in entry["received_ranges"]) == entry["received_g"]
        assert sum(r["quantity_g"] for r in entry["retired_ranges"]) == entry["retired_g"]
    assert sum(r["quantity_g"] for r in statement["retirements"]) == 3000


def test_a_partly_retired_park_shows_its_available_ranges(client, admin, park, make_batch):
    batch = make_batch(4)
    _transfer(client, admin, park.id, batch["id"], 3000)
    _retire(client, admin, park.id, 1200)

    statement = client.get(f"{API}/parks/{park.id}/statement", headers=admin.headers).get_json()

    assert (statement["received_g"], statement["retired_g"], statement["available_g"]) == (3000, 1200, 1800)
    [entry] = statement["batches"]
    start = batch["serial_from"]
    assert [(r["serial_from"], r["serial_to"]) for r in entry["retired_ranges"]] == [(start, start + 1199)]
    assert [(r["serial_from"], r["serial_to"]) for r in entry["available_ranges"]] == [(start + 1200, start + 2999)]
    assert db.session.get(Park, park.id).retired_g == 1200


def test_the_inventory_shows_gross_offset_and_net_per_year(client, admin, park, park_manager, make_batch):
    batch = make_batch(3)
    _transfer(client, admin, park.id, batch["id"], 3000)
    _retire(client, park_manager, park.id, 1000, inventory_year=2026)
    _retire(client, park_manager, park.id, 500, inventory_year=2025)

    put = client.put(f"{API}/parks/{park.id}/inventory/2026", json={"emissions_g": 9_000_000},
                     headers=park_manager.headers)
    bad = client.put(f"{API}/parks/{park.id}/inventory/1900", json={"emissions_g": 1}, headers=admin.headers)
    again = client.put(f"{API}/parks/{park.id}/inventory/2026", json={"emissions_g": 8_000_000}, headers=admin.headers)

    assert put.status_code == 200 and put.get_json() == {"year": 2026, "emissions_g": 9_000_000, "offset_g": 1000,
                                                          "net_g": 8_999_000}
    assert bad.status_code == 422 and "year" in bad.get_json()["errors"]
    assert again.get_json()["net_g"] == 7_999_000
    statement = client.get(f"{API}/parks/{park.id}/statement", headers=park_manager.headers).get_json()
    assert statement["inventory"] == [{"year": 2026, "emissions_g": 8_000_000, "offset_g": 1000, "net_g": 7_999_000}]


def test_transfer_and_retirement_input_is_validated(client, admin, park, make_batch):
    batch = make_batch(1)
    cases = [("transfers", {"batch_id": "nope", "quantity_g": 1}, "batch_id"),
             ("transfers", {"batch_id": batch["id"], "quantity_g": 0}, "quantity_g"),
             ("transfers", {"batch_id": batch["id"], "quantity_g": "5"}, "quantity_g"),
             ("retirements", {"quantity_g": 1}, "purpose"),
             ("retirements", {"quantity_g": -1, "purpose": "x"}, "quantity_g"),
             ("retirements", {"quantity_g": 1, "purpose": "x", "serial_from": 1}, "serial_from")]

    for kind, body, field in cases:
        reply = client.post(f"{API}/parks/{park.id}/{kind}", json=body, headers=admin.headers)
        assert reply.status_code == 422 and field in reply.get_json()["errors"], (kind, body, reply.get_json())
    assert _transfer(client, admin, "nope", batch["id"], 1).status_code == 404


# ---------------------------------------------------------------- park managers


def test_an_admin_creates_a_park_manager_who_sees_only_their_park(client, admin, park, make_park, make_batch):
    other = make_park()
    batch = make_batch(2)
    _transfer(client, admin, park.id, batch["id"], 1000)
    _transfer(client, admin, other.id, batch["id"], 1000)
    phone = next_phone()
    created = client.post(f"{API}/admin/staff", json={"phone": phone, "password": PASSWORD, "display_name": "园区",
                                                      "role": "park_manager", "park_id": park.id},
                          headers=admin.headers)
    unknown = client.post(f"{API}/admin/staff", json={"phone": next_phone(), "password": PASSWORD,
                                                      "display_name": "园区", "role": "park_manager",
                                                      "park_id": "nope"}, headers=admin.headers)
    tokens = client.post(f"{API}/auth/login", json={"phone": phone, "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    me = client.get(f"{API}/me", headers=headers).get_json()
    mine = client.get(f"{API}/parks/{park.id}/statement", headers=headers)
    theirs = client.get(f"{API}/parks/{other.id}/statement", headers=headers)
    listed = client.get(f"{API}/parks", headers=headers).get_json()["items"]
    retire_theirs = client.post(f"{API}/parks/{other.id}/retirements", json={"quantity_g": 1, "purpose": "x"},
                                headers=headers)
    retire_mine = client.post(f"{API}/parks/{park.id}/retirements", json={"quantity_g": 400, "purpose": "x"},
                              headers=headers)

    assert created.status_code == 201 and me["park_id"] == park.id and me["roles"] == ["park_manager"]
    assert unknown.status_code == 422 and "park_id" in unknown.get_json()["errors"]
    assert mine.status_code == 200 and mine.get_json()["received_g"] == 1000
    assert theirs.status_code == 404 and theirs.get_json()["code"] == "not_found"
    assert [p["id"] for p in listed] == [park.id]
    assert client.get(f"{API}/parks/{other.id}", headers=headers).status_code == 404
    assert retire_theirs.status_code == 404
    assert retire_mine.status_code == 201 and retire_mine.get_json()["quantity_g"] == 400
    assert client.get(f"{API}/parks", headers=admin.headers).status_code == 200
