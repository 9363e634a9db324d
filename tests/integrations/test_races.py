"""Concurrent batches from one integration: every external_id is credited exactly once."""
import random
import threading

import pytest
from sqlalchemy import func, select

from app.activities.models import Action
from app.extensions import db
from app.ledger import service as ledger
from tests.integrations.conftest import balance, card_of, push, record

THREADS = 20
POOL = 30
BATCH = 12


@pytest.mark.committing
def test_overlapping_batches_from_20_threads_credit_each_external_id_once(app, client, device, make_resident):
    households = [make_resident(), make_resident(), make_resident()]
    owner = {f"trip-{i:03d}": households[i % 3] for i in range(POOL)}  # paper, 1 kg = 100 points each
    rng = random.Random(7)
    batches = []
    for t in range(THREADS):
        ids = [f"trip-{(t * 5 + k) % POOL:03d}" for k in range(BATCH)]
        rng.shuffle(ids)
        batches.append([record(external_id, card_of(owner[external_id]), quantity="1") for external_id in ids])
    db.session.remove()  # end the main thread's read transaction: on SQLite it holds the write lock
    barrier = threading.Barrier(THREADS)
    statuses, results, failures = [], [], []

    def send(batch):
        try:
            with app.app_context():
                thread_client = app.test_client()
                barrier.wait()
                response = push(thread_client, device, {"records": batch})
                statuses.append(response.status_code)
                results.extend(response.get_json().get("results", []))
        except Exception as exc:  # surfaced by the assertion below
            failures.append(repr(exc))

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert statuses == [200] * THREADS
    sent = {r["external_id"] for batch in batches for r in batch}
    created = [r["external_id"] for r in results if r["status"] == "created"]
    assert sorted(created) == sorted(sent)  # each exactly once
    assert {r["status"] for r in results} <= {"created", "duplicate"}
    db.session.remove()
    per_id = db.session.execute(
        select(Action.external_id, func.count()).where(Action.integration_id == device.id)
        .group_by(Action.external_id)
    ).all()
    assert sorted(per_id) == sorted((external_id, 1) for external_id in sent)
    for household in households:
        expected = 100 * sum(1 for external_id in sent if owner[external_id] is household)
        assert balance(client, household) == expected
    assert ledger.verify() == []
