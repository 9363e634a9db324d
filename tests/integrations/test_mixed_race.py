"""Staff approvals and device records racing for one household: caps hold and the balance is exact."""
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.activities.models import Action, CapUsage
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from tests.integrations.conftest import CST, balance, card_of, push, record

EACH = 30  # 30 approvals + 30 device records of 1 kg paper against the 50 kg daily cap


@pytest.mark.committing
def test_concurrent_approvals_and_device_records_never_pass_the_cap_and_credit_exactly(
    app, client, device, resident, staff
):
    when = (utcnow() - timedelta(hours=1)).astimezone(CST).isoformat()
    pending = []
    for _ in range(EACH):
        reply = client.post("/api/v1/actions", headers=resident.headers, json={
            "action_type": "recycling", "variant": "paper", "quantity": "1", "unit": "kg", "occurred_at": when})
        assert reply.status_code == 201 and reply.get_json()["status"] == "pending"
        pending.append(reply.get_json()["id"])
    card = card_of(resident)
    db.session.remove()  # on SQLite an open read transaction would hold the write lock
    barrier = threading.Barrier(2 * EACH)
    statuses, failures = [], []

    def run(call):
        try:
            with app.app_context():
                thread_client = app.test_client()
                barrier.wait()
                statuses.append(call(thread_client).status_code)
        except Exception as exc:  # surfaced by the assertion below
            failures.append(repr(exc))

    calls = [lambda c, a=a: c.post(f"/api/v1/review/actions/{a}/approve", headers=staff.headers) for a in pending]
    calls += [lambda c, i=i: push(c, device, record(f"bin-{i}", card, quantity="1", occurred_at=when))
              for i in range(EACH)]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(set(statuses)) == [200]
    db.session.remove()
    approved = db.session.scalars(select(Action).where(Action.household_id == resident.household_id,
                                                       Action.status == "approved")).all()
    credited = sum((a.credited_quantity for a in approved), Decimal(0))
    assert credited == Decimal(50)  # the daily cap, exactly: approvals past it are cut, device records wait
    assert sum(a.base_points for a in approved) == 5000
    assert balance(client, resident) == 5000
    used = db.session.scalars(select(CapUsage.used_milli).where(CapUsage.household_id == resident.household_id))
    assert max(used) == 50_000
    assert ledger.verify() == []
