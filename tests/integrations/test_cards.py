"""A household card typed with spaces or hyphens names the same household from a device and from staff."""
import pytest

from tests.activities.conftest import action_body
from tests.integrations.conftest import card_of, push, record

TYPED = {
    "spaces": lambda card: " ".join(card[i:i + 4] for i in range(0, len(card), 4)),
    "hyphens": lambda card: "-".join(card[i:i + 4] for i in range(0, len(card), 4)),
    "both": lambda card: f" {card[:4]} - {card[4:8]}\t{card[8:]} ",
    "en dash": lambda card: "–".join(card[i:i + 4] for i in range(0, len(card), 4)),
}


@pytest.mark.parametrize("typed", TYPED.values(), ids=TYPED.keys())
def test_a_device_finds_the_household_by_a_typed_card(client, device, resident, typed):
    reply = push(client, device, record("typed-1", typed(card_of(resident))))

    assert reply.status_code == 200
    assert reply.get_json()["results"][0]["status"] == "created"


@pytest.mark.parametrize("typed", TYPED.values(), ids=TYPED.keys())
def test_community_staff_find_the_household_by_a_typed_card(client, factor_set, resident, staff, typed):
    body = {**action_body(quantity="1"), "household_card": typed(card_of(resident)), "resident_id": resident.id}

    reply = client.post("/api/v1/staff/actions", json=body, headers=staff.headers)

    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert reply.get_json()["household_id"] == resident.household_id
