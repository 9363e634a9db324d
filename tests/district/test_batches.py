"""Reduction batches: what they take, their serial ranges, and reversals deducted from the next batch."""
import re

from sqlalchemy import func, select

from app.activities import review, service as activities
from app.district.models import BatchAction, BatchDeduction, ReductionBatch
from app.extensions import db
from tests.district.conftest import API, issue, today


def test_a_batch_takes_every_verified_approved_unbatched_action_of_the_community_in_the_period(
        client, admin, households, make_community, approve):
    people = households(3)
    verified = [approve(p, 0, quantity="2.5") for p in people] + [approve(people[0], 0, variant="aluminium",
                                                                          quantity="0.5")]
    approve(people[1], 0, verified=False)  # self-approved: never verified
    other = households(1, community_id=make_community().id)[0]
    approve(other, 0)  # another community

    reply = issue(client, admin, people[0].user.household.community_id, today(), today())

    assert reply.status_code == 201, reply.get_json()
    batch = reply.get_json()
    assert batch["action_count"] == 4 and batch["quantity_g"] == 3 * 2500 + 5030 == batch["gross_g"]
    assert batch["serial_to"] - batch["serial_from"] + 1 == batch["quantity_g"]
    assert batch["factor_sets"] == ["SJ-2026.1"] and batch["deducted_g"] == 0
    assert re.fullmatch(rf"SJ-{today().year}-[0-9A-F]{{8}}-{batch['serial_from']}-{batch['serial_to']}",
                        batch["serial_label"])
    batched = set(db.session.scalars(select(BatchAction.action_id).where(BatchAction.batch_id == batch["id"])))
    assert batched == {a.id for a in verified}


def test_issuing_again_finds_nothing_and_later_approvals_go_to_a_later_batch(client, admin, households, approve):
    people = households(2)
    approve(people[0], 0)
    community_id = people[0].user.household.community_id
    first = issue(client, admin, community_id, today(), today()).get_json()

    again = issue(client, admin, community_id, today(), today())
    approve(people[1], 0, quantity="3")
    later = issue(client, admin, community_id, today(), today())

    assert again.status_code == 409 and again.get_json()["code"] == "nothing_to_batch"
    assert later.status_code == 201
    second = later.get_json()
    assert second["action_count"] == 1 and second["quantity_g"] == 3000
    assert second["serial_from"] == first["serial_to"] + 1  # contiguous, never overlapping


def test_a_reversed_batched_action_is_deducted_from_the_next_batch_with_a_reference(client, admin, households,
                                                                                  approve, staff):
    people = households(2)
    batched = approve(people[0], 0, quantity="2")
    community_id = people[0].user.household.community_id
    first = issue(client, admin, community_id, today(), today()).get_json()
    reversal = client.post(f"{API}/review/actions/{batched.id}/reverse", json={"reason": "称重错误"},
                           headers=staff.headers)
    assert reversal.status_code == 200
    approve(people[1], 0, quantity="5")

    reply = issue(client, admin, community_id, today(), today())

    assert reply.status_code == 201
    batch = reply.get_json()
    assert (batch["gross_g"], batch["deducted_g"], batch["quantity_g"]) == (5000, 2000, 3000)
    assert batch["deductions"] == [{"action_id": batched.id, "batch_id": first["id"], "quantity_g": 2000}]
    assert client.get(f"{API}/reduction-batches/{batch['id']}", headers=admin.headers).get_json()["deductions"] == \
        batch["deductions"]
    first_now = client.get(f"{API}/reduction-batches/{first['id']}", headers=admin.headers).get_json()
    assert first_now["quantity_g"] == 2000  # an issued batch is never rewritten


def test_deductions_larger_than_the_new_grams_wait_and_nothing_is_issued(client, admin, households, approve, staff):
    people = households(2)
    batched = approve(people[0], 0, quantity="4")
    community_id = people[0].user.household.community_id
    issue(client, admin, community_id, today(), today())
    review.reverse_action(batched.id, staff.user, "重复")
    db.session.commit()
    small = approve(people[1], 0, quantity="1")

    reply = issue(client, admin, community_id, today(), today())

    assert reply.status_code == 409 and reply.get_json()["code"] == "nothing_to_batch"
    assert reply.get_json()["pending_deductions_g"] == 4000 and reply.get_json()["gross_g"] == 1000
    assert db.session.get(BatchAction, small.id) is None
    assert db.session.scalar(select(func.count()).select_from(BatchDeduction)
                             .where(BatchDeduction.applied_batch_id.is_(None))) == 1


def test_reversing_an_unbatched_action_owes_nothing(client, admin, resident, approve, staff):
    action = approve(resident, 0)

    review.reverse_action(action.id, staff.user, "录错")
    db.session.commit()

    assert db.session.scalar(select(func.count()).select_from(BatchDeduction)) == 0
    reply = issue(client, admin, resident.user.household.community_id, today(), today())
    assert reply.status_code == 409 and reply.get_json()["code"] == "nothing_to_batch"


def test_batch_requests_are_validated(client, admin, community):
    cases = [({"community_id": "nope", "period_from": "2026-01-01", "period_to": "2026-01-31"}, "community_id"),
             ({"community_id": community.id, "period_from": "2025-12-01", "period_to": "2026-01-31"}, "period_to"),
             ({"community_id": community.id, "period_from": "2026-02-01", "period_to": "2026-01-31"}, "period_to"),
             ({"community_id": community.id, "period_from": "2026-01-01"}, "period_to"),
             ({"community_id": community.id, "period_from": "2026-01-01", "period_to": "2026-01-02",
               "quantity_g": 5}, "quantity_g")]

    for body, field in cases:
        reply = client.post(f"{API}/reduction-batches", json=body, headers=admin.headers)
        assert reply.status_code == 422 and field in reply.get_json()["errors"], (body, reply.get_json())


def test_batches_are_listed_newest_first_and_unknown_ones_are_404(client, admin, households, approve):
    person = households(1)[0]
    approve(person, 0)
    made = issue(client, admin, person.user.household.community_id, today(), today()).get_json()

    listed = client.get(f"{API}/reduction-batches?community_id={made['community_id']}", headers=admin.headers)

    assert [b["id"] for b in listed.get_json()["items"]] == [made["id"]]
    assert client.get(f"{API}/reduction-batches/nope", headers=admin.headers).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(ReductionBatch)) == 1
