"""Issuance, transfers, retirements and reversals racing on real threads and connections."""
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.district.models import BatchAction, BatchDeduction, ParkTransfer, ReductionBatch, RetiredRange
from app.extensions import db
from app.ledger import service as ledger
from tests.district.conftest import API, today
from tests.fixtures import race

pytestmark = pytest.mark.committing


def _codes(replies):
    return Counter(status if status < 300 else (status, body.get("code")) for status, body in replies)


def _batch_of(client, admin, households, approve, kg=5):
    person = households(1)[0]
    approve(person, 0, quantity=str(kg))
    reply = client.post(f"{API}/reduction-batches", json={"community_id": person.user.household.community_id,
                                                          "period_from": str(today()), "period_to": str(today())},
                        headers=admin.headers)
    assert reply.status_code == 201
    return reply.get_json()


def test_two_concurrent_issuances_batch_each_action_once(app, admin, households, approve):
    people = households(4)
    for index, person in enumerate(people):
        approve(person, 0, quantity=f"{index + 1}.5")
    body = {"community_id": people[0].user.household.community_id, "period_from": str(today()),
            "period_to": str(today())}

    replies = race(app, [(f"{API}/reduction-batches", body, admin.headers)] * 2)

    assert _codes(replies) == {201: 1, (409, "nothing_to_batch"): 1}
    assert db.session.scalar(select(func.count()).select_from(BatchAction)) == 4
    assert db.session.scalar(select(func.sum(ReductionBatch.quantity_g))) == 1500 + 2500 + 3500 + 4500


def test_concurrent_transfers_of_one_batch_move_exactly_its_size(app, client, admin, households, approve, make_park):
    batch = _batch_of(client, admin, households, approve, kg=5)
    parks = [make_park() for _ in range(2)]

    replies = race(app, [(f"{API}/parks/{parks[i % 2].id}/transfers", {"batch_id": batch["id"], "quantity_g": 1000},
                           admin.headers) for i in range(8)])

    assert _codes(replies) == {201: 5, (409, "exceeds_available"): 3}
    moved = db.session.scalars(select(ParkTransfer).order_by(ParkTransfer.serial_from)).all()
    assert sum(t.quantity_g for t in moved) == 5000
    assert [(t.serial_from, t.serial_to) for t in moved] == [
        (batch["serial_from"] + 1000 * i, batch["serial_from"] + 1000 * i + 999) for i in range(5)]


def test_concurrent_retirements_retire_exactly_what_is_available(app, client, admin, households, approve, park):
    batch = _batch_of(client, admin, households, approve, kg=4)
    assert client.post(f"{API}/parks/{park.id}/transfers", json={"batch_id": batch["id"], "quantity_g": 3500},
                       headers=admin.headers).status_code == 201

    replies = race(app, [(f"{API}/parks/{park.id}/retirements", {"quantity_g": 1000, "purpose": "抵消"},
                           admin.headers)] * 6)

    assert _codes(replies) == {201: 3, (409, "exceeds_available"): 3}
    ranges = db.session.scalars(select(RetiredRange).order_by(RetiredRange.serial_from)).all()
    assert sum(r.quantity_g for r in ranges) == 3000
    assert all(a.serial_to < b.serial_from for a, b in zip(ranges, ranges[1:]))  # never overlapping
    statement = client.get(f"{API}/parks/{park.id}/statement", headers=admin.headers).get_json()
    assert (statement["retired_g"], statement["available_g"]) == (3000, 500)


def test_reversals_racing_an_issuance_are_either_left_out_or_deducted_later(app, admin, households, approve, staff):
    people = households(6)
    actions = [approve(p, 0, quantity="2") for p in people]
    community_id = people[0].user.household.community_id
    body = {"community_id": community_id, "period_from": str(today()), "period_to": str(today())}
    reversals = [(f"{API}/review/actions/{a.id}/reverse", {"reason": "复核"}, staff.headers) for a in actions[:3]]

    replies = race(app, [(f"{API}/reduction-batches", body, admin.headers), *reversals])

    assert all(status in (200, 201) for status, _ in replies), replies
    batched = set(db.session.scalars(select(BatchAction.action_id)))
    owed = set(db.session.scalars(select(BatchDeduction.action_id)))
    for action in actions[:3]:
        assert (action.id in batched) == (action.id in owed)  # batched before its reversal ⇔ owed to the next batch
    assert {a.id for a in actions[3:]} <= batched
    issued = db.session.scalar(select(func.sum(ReductionBatch.quantity_g)))
    assert issued - 2000 * len(owed) == 2000 * 3  # once the deductions are netted: exactly the unreversed grams
    assert ledger.verify() == []


def test_concurrent_multi_action_approvals_keep_the_rollups_exact_without_deadlocks(app, households, factor_set):
    from decimal import Decimal

    from app.activities import service as activities
    from app.district.exports import Cells
    from tests.district.conftest import at, recount

    people = [(p.household_id, p.id) for p in households(6)]
    variants = ["paper", "aluminium", "pet", "glass"]
    barrier, errors = threading.Barrier(len(people)), []
    db.session.rollback()

    def approve_many(index, person):
        household_id, resident_id = person
        with app.app_context():
            try:
                barrier.wait()
                for variant in variants[index % 4:] + variants[:index % 4]:  # each in another order
                    activities.record_action(household_id=household_id, resident_id=resident_id,
                                             action_type="recycling", variant=variant, quantity=Decimal("0.5"),
                                             unit="kg", occurred_at=at(0), source="staff", actor_id=None)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001  reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=approve_many, args=(i, p)) for i, p in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    for group_by in (["community", "action_type"], ["month"], ["street", "community", "action_type", "month"]):
        cells = {tuple(labels): m for _, labels, m in Cells(today(), today(), group_by).rows()}
        assert cells == recount(today(), today(), group_by)
    assert ledger.verify() == []
