"""What staff see before deciding, what residents can still earn, and how an action they may not log is credited."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from app.activities import valuation
from app.activities.valuation import CapPeriod
from app.activities.models import Action, CapUsage
from app.columns import utcnow
from app.extensions import db
from tests.activities.conftest import action_body, ago, local, row, today_local

API = "/api/v1"


def post_action(client, person, **overrides):
    reply = client.post(f"{API}/actions", json=action_body(**overrides), headers=person.headers)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def queue(client, staff, **params):
    reply = client.get(f"{API}/review/actions", query_string=params, headers=staff.headers)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def usage_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(CapUsage))


# ---------------------------------------------------------------- the pure arithmetic


def test_value_quantity_cuts_to_the_tightest_cap_and_floors_per_action():
    periods = [CapPeriod("D:x", 30_000, "daily"), CapPeriod("M:x", 100_000, "monthly")]
    valued = valuation.value(Decimal("7.5"), Decimal("1.15"), Decimal("115"), periods, {"D:x": 25_000, "M:x": 99_000})

    assert valued.credited == Decimal("1.000") and valued.binding_cap == "monthly"
    assert valued.base_points == 115 and valued.reduction_g == 1150
    assert valued.cap_remaining == {"daily": Decimal("4"), "monthly": Decimal("0")}


def test_value_quantity_without_caps_credits_everything_and_floors():
    valued = valuation.value(Decimal("0.333"), Decimal("0.0487"), Decimal("4.87"), [], {})

    assert (valued.credited, valued.binding_cap, valued.base_points, valued.reduction_g) == (
        Decimal("0.333"), None, 1, 16)


def test_cap_periods_are_shanghai_days_and_months():
    late_utc = local(today_local(), hour=1) - timedelta(hours=2)  # 23:00 the day before, Shanghai

    periods = valuation.cap_periods(late_utc, Decimal("5"), Decimal("8.5"))

    day = (today_local() - timedelta(days=1))
    assert periods == [CapPeriod(f"D:{day.isoformat()}", 5000, "daily"),
                       CapPeriod(f"M:{day.strftime('%Y-%m')}", 8500, "monthly")]


# ---------------------------------------------------------------- the review queue


def test_queue_item_shows_masked_resident_card_community_and_points_if_approved(client, factor_set, resident, staff):
    action = post_action(client, resident, quantity="2.5")  # recycling paper: 100 points/kg, daily cap 50 kg

    item = queue(client, staff)["items"][0]

    assert item["id"] == action["id"]
    review = item["review"]
    assert review["resident_name_masked"] == "测**"
    phone = resident.user.phone
    assert review["phone_masked"] == f"{phone[:3]}****{phone[-4:]}"
    assert review["household_card"] == resident.user.household.card_number
    assert review["community_id"] == resident.user.household.community_id
    assert review["points_if_approved"] == 250
    assert review["receipt_preview"]["credited_quantity"] == "2.5"
    assert review["receipt_preview"]["cap_applied"] is None
    assert review["appeal_note"] is None and review["rejection_reason"] is None


def test_points_if_approved_applies_the_caps_as_they_stand_and_writes_nothing(client, factor_set, resident, staff):
    first = post_action(client, resident, quantity="45")
    second = post_action(client, resident, quantity="10")
    client.post(f"{API}/review/actions/{first['id']}/approve", headers=staff.headers)
    rows_before = usage_rows()

    item = queue(client, staff)["items"][0]

    assert item["id"] == second["id"]
    assert item["review"]["points_if_approved"] == 500  # 5 kg left of the 50 kg daily cap
    assert item["review"]["receipt_preview"]["cap_applied"] == "daily"
    assert item["review"]["receipt_preview"]["cap_remaining"] == {"daily": "0"}
    assert usage_rows() == rows_before
    approved = client.post(f"{API}/review/actions/{second['id']}/approve", headers=staff.headers).get_json()
    assert approved["points"] == item["review"]["points_if_approved"]
    assert approved["receipt"]["credited_quantity"] == item["review"]["receipt_preview"]["credited_quantity"]


def test_an_appeal_shows_its_note_and_the_earlier_rejection(client, factor_set, resident, staff):
    action = post_action(client, resident)
    client.post(f"{API}/review/actions/{action['id']}/reject", json={"reason": "照片模糊"}, headers=staff.headers)
    client.post(f"{API}/actions/{action['id']}/appeal", json={"note": "补充清晰照片"}, headers=resident.headers)

    review = queue(client, staff)["items"][0]["review"]

    assert review["appeal_note"] == "补充清晰照片" and review["rejection_reason"] == "照片模糊"
    assert review["points_if_approved"] == 250


def test_decided_actions_have_no_points_if_approved(client, factor_set, resident, staff):
    action = post_action(client, resident)
    client.post(f"{API}/review/actions/{action['id']}/reject", json={"reason": "duplicate"}, headers=staff.headers)

    review = queue(client, staff, status="rejected")["items"][0]["review"]

    assert review["points_if_approved"] is None and review["receipt_preview"] is None
    assert review["rejection_reason"] == "duplicate"


def test_a_device_record_without_a_resident_has_no_name_or_phone(client, factor_set, resident, staff, record):
    record(resident, resident_id=None, source="device", quantity=Decimal("80"), actor_id=None)  # over the cap: pending

    review = queue(client, staff)["items"][0]["review"]

    assert review["resident_name_masked"] is None and review["phone_masked"] is None
    assert review["household_card"] == resident.user.household.card_number
    assert review["points_if_approved"] == 5000


def test_a_page_of_the_queue_costs_the_same_queries_for_3_or_40_items(client, factor_set, make_resident, staff):
    def statements_for(limit):
        seen = []

        def listener(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            items = queue(client, staff, limit=limit)["items"]
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(items), len(seen)

    for _ in range(20):
        person = make_resident()
        post_action(client, person, quantity="1")
        post_action(client, person, variant="pet", quantity="1")

    statements_for(3)  # warm: the factor set and the caller are in the identity map from here on
    few = statements_for(3)
    many = statements_for(40)

    assert few[0] == 3 and many[0] == 40
    assert many[1] == few[1] <= 11  # 10, and one for the active campaigns that could add to each item


def test_a_row_changed_by_a_later_factor_set_is_previewed_with_the_new_row(
        client, factor_set, make_factor_set, resident, staff):
    make_factor_set("T-1", today_local() - timedelta(days=3), [row(points_per_unit="10")])
    action = post_action(client, resident, action_type="tree_care", variant="watering", quantity="2")
    make_factor_set("T-2", today_local(), [row(points_per_unit="30")])

    review = queue(client, staff)["items"][0]["review"]

    assert review["receipt_preview"]["factor_set"] in ("T-1", "T-2")
    approved = client.post(f"{API}/review/actions/{action['id']}/approve", headers=staff.headers).get_json()
    assert approved["points"] == review["points_if_approved"]


# ---------------------------------------------------------------- wallet allowances


def allowances(client, person):
    reply = client.get(f"{API}/wallet/allowances", headers=person.headers)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def item_of(body, action_type, variant=None):
    return next(i for i in body["items"] if (i["action_type"], i["variant"]) == (action_type, variant))


def test_allowances_list_every_row_in_force_with_what_is_left(client, factor_set, resident):
    body = allowances(client, resident)

    assert body["date"] == today_local().isoformat()
    assert len(body["items"]) == len(factor_set.rows)
    walking = item_of(body, "walking")
    assert walking == {**walking, "unit": "km", "sources": ["resident"], "daily_left": "10", "monthly_left": None,
                       "points_left_today": 48}
    electricity = item_of(body, "energy_saving", "electricity")
    assert electricity["daily_left"] is None and electricity["monthly_left"] == "60"
    assert electricity["points_left_today"] == 2520
    metro = item_of(body, "transit", "metro")
    assert metro["sources"] == ["device", "import"]


def test_allowances_shrink_as_approved_actions_use_the_caps(client, factor_set, resident, staff):
    now = ago(seconds=1).isoformat()  # today's caps: an hour ago is yesterday from 00:00 to 01:00 in Shanghai
    walk = post_action(client, resident, action_type="walking", variant=None, unit="km", quantity="3.5", occurred_at=now)
    paper = post_action(client, resident, quantity="20", occurred_at=now)
    client.post(f"{API}/review/actions/{paper['id']}/approve", headers=staff.headers)

    body = allowances(client, resident)

    assert walk["status"] == "approved"  # walking is self-approvable
    assert item_of(body, "walking")["daily_left"] == "6.5"
    assert item_of(body, "walking")["points_left_today"] == 31  # floor(6.5 × 4.87)
    assert item_of(body, "recycling", "paper")["daily_left"] == "30"
    assert item_of(body, "recycling", "paper")["points_left_today"] == 3000


def test_a_cap_used_up_reads_zero_not_negative(client, factor_set, resident):
    post_action(client, resident, action_type="walking", variant=None, unit="km", quantity="12",
                occurred_at=ago(seconds=1).isoformat())

    walking = item_of(allowances(client, resident), "walking")

    assert walking["daily_left"] == "0" and walking["points_left_today"] == 0


def test_allowances_are_the_callers_household_only_and_for_residents(client, factor_set, resident, make_resident,
                                                                     staff):
    post_action(client, resident, action_type="walking", variant=None, unit="km", quantity="4")
    neighbour = make_resident()

    assert item_of(allowances(client, neighbour), "walking")["daily_left"] == "10"
    assert client.get(f"{API}/wallet/allowances", headers=staff.headers).status_code == 403
    assert client.get(f"{API}/wallet/allowances").status_code == 401


def test_allowances_with_no_factor_set_in_force_are_empty(client, resident):
    body = allowances(client, resident)

    assert body["items"] == [] and body["factor_set"] is None


# ---------------------------------------------------------------- how an action residents may not log is credited


@pytest.mark.parametrize("action_type,variant,unit,words", [
    ("waste_sorting", "correct_sort", "event", ["community staff", "smart bin"]),
    ("transit", "metro", "km", ["smart device", "transit operator"]),
    ("second_hand", "phone", "item", ["operator import"]),
])
def test_the_422_says_how_the_action_does_get_credited(client, factor_set, resident, action_type, variant, unit,
                                                       words):
    reply = client.post(f"{API}/actions", headers=resident.headers, json=action_body(
        action_type=action_type, variant=variant, unit=unit, quantity="1"))

    assert reply.status_code == 422
    message = reply.get_json()["errors"]["action_type"][0]
    assert message.startswith("Residents cannot report this action themselves")
    assert all(word in message for word in words), message
    assert "resident" not in message.split(";")[1]
