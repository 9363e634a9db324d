"""Concurrent batches from one integration: every external_id is credited exactly once."""
import random
import threading

import pytest
from sqlalchemy import func, select

from app.activities.models import Action
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount
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


@pytest.mark.committing
def test_batches_naming_new_households_in_any_order_create_each_wallet_once_without_deadlock(
        app, client, device, make_resident):
    # No household has a wallet yet: every batch creates or locks its wallets and issuance shards in
    # one statement, in id order, whatever the order of its records.
    households = [make_resident() for _ in range(12)]
    rng = random.Random(11)
    batches = []
    for t in range(10):
        named = rng.sample(households, 8)
        batch = [record(f"new-{t}-{k}", card_of(h), quantity="1") for k, h in enumerate(named)]
        rng.shuffle(batch)
        batches.append((named, batch))
    db.session.remove()
    barrier = threading.Barrier(len(batches))
    statuses, failures = [], []

    def send(batch):
        try:
            with app.app_context():
                thread_client = app.test_client()
                barrier.wait()
                statuses.append(push(thread_client, device, {"records": batch}).status_code)
        except Exception as exc:  # surfaced by the assertion below
            failures.append(repr(exc))

    threads = [threading.Thread(target=send, args=(batch,)) for _, batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert statuses == [200] * len(batches)
    for household in households:
        named_in = sum(1 for named, _ in batches if household in named)
        assert balance(client, household) == 100 * named_in  # paper, 1 kg = 100 points per record
    db.session.remove()
    wallets = db.session.scalars(select(func.count()).select_from(LedgerAccount).where(
        LedgerAccount.kind == "household",
        LedgerAccount.owner_id.in_([h.user.household_id for h in households]))).one()
    assert wallets == sum(1 for h in households if any(h in named for named, _ in batches))
    assert ledger.verify() == []
