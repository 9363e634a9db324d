"""Points expiry: lots, the daily job, its command, and what the wallet shows."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import jobs
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.expiry import expire_points
from app.ledger.models import LedgerAccount, LedgerEntry, PointLot
from tests.rewards.builders import balance


def _expiry_entries(household_id):
    wallet = ledger.account_of("household", household_id)
    return db.session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == wallet.id,
                                                        LedgerEntry.kind == "expiry")).all()


def test_a_lot_past_its_date_moves_to_the_expiry_account(resident, fund):
    fund(resident.household_id, 70, expires_at=utcnow() - timedelta(minutes=1))
    fund(resident.household_id, 30, expires_at=utcnow() + timedelta(days=90))

    expired = expire_points()

    assert expired == 1
    assert balance(resident.household_id) == 30
    [entry] = _expiry_entries(resident.household_id)
    assert entry.amount == -70 and entry.ref_type == "lot"
    sink = db.session.scalar(select(LedgerAccount).join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
                             .where(LedgerEntry.transfer_id == entry.transfer_id, LedgerEntry.amount == 70))
    assert sink.kind == "expiry"
    assert db.session.get(PointLot, entry.ref_id).remaining == 0
    assert ledger.verify() == []


def test_running_the_expiry_twice_expires_once(resident, fund):
    fund(resident.household_id, 70, expires_at=utcnow() - timedelta(minutes=1))

    first, second = expire_points(), expire_points()

    assert (first, second) == (1, 0)
    assert len(_expiry_entries(resident.household_id)) == 1 and balance(resident.household_id) == 0


def test_only_what_a_lot_still_holds_expires(resident, fund):
    fund(resident.household_id, 100, expires_at=utcnow() + timedelta(days=1))
    ledger.transfer(ledger.account_of("household", resident.household_id),
                    ledger.system_account("issuance", resident.household_id), 60,
                    kind="adjustment", ref_type="test", ref_id="spend")
    db.session.commit()

    expire_points(now=utcnow() + timedelta(days=2))

    assert [e.amount for e in _expiry_entries(resident.household_id)] == [-40]
    assert balance(resident.household_id) == 0


def test_earned_points_expire_after_the_configured_months(app, resident, monkeypatch):
    monkeypatch.setitem(app.config, "POINTS_EXPIRY_MONTHS", 24)
    ledger.award(resident.household_id, 50, kind="adjustment", ref_type="test", ref_id="earn")
    db.session.commit()

    assert expire_points(now=utcnow() + timedelta(days=365)) == 0
    assert expire_points(now=utcnow() + timedelta(days=2 * 366)) == 1
    monkeypatch.setitem(app.config, "POINTS_EXPIRY_MONTHS", 1)
    ledger.award(resident.household_id, 20, kind="adjustment", ref_type="test", ref_id="earn-2")
    db.session.commit()
    assert expire_points(now=utcnow() + timedelta(days=32)) == 1
    assert balance(resident.household_id) == 0


def test_expiry_works_through_batches(resident, make_resident, fund):
    people = [resident] + [make_resident() for _ in range(4)]
    for person in people:
        fund(person.household_id, 10, expires_at=utcnow() - timedelta(seconds=1))
        fund(person.household_id, 5, expires_at=utcnow() - timedelta(seconds=2))

    assert expire_points(batch_size=3) == 10
    assert [balance(p.household_id) for p in people] == [0] * 5


def test_the_wallet_shows_points_expiring_within_30_days(client, resident, fund):
    fund(resident.household_id, 40, expires_at=utcnow() + timedelta(days=29))
    fund(resident.household_id, 60, expires_at=utcnow() + timedelta(days=31))

    wallet = client.get("/api/v1/wallet", headers=resident.headers).get_json()

    assert wallet["expiring_30d"] == 40 and wallet["balance"] == 100


def test_the_expiry_job_and_command_are_idempotent(app, resident, fund):
    fund(resident.household_id, 25, expires_at=utcnow() - timedelta(minutes=1))

    job = jobs.enqueue("ledger.expire_points")
    db.session.commit()
    state = jobs.run_job(job.id)
    output = app.test_cli_runner().invoke(args=["points", "expire"]).output

    assert state == "done"
    assert "expired 0 lot(s)" in output
    assert len(_expiry_entries(resident.household_id)) == 1 and balance(resident.household_id) == 0


@pytest.mark.committing
def test_two_concurrent_expiry_runs_expire_each_lot_once(app, make_resident, fund):
    people = [make_resident() for _ in range(6)]
    for person in people:
        fund(person.household_id, 10, expires_at=utcnow() - timedelta(seconds=1))
    barrier, counts, errors = threading.Barrier(2), [], []

    def run():
        with app.app_context():
            try:
                barrier.wait()
                counts.append(expire_points(batch_size=2))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == [] and sum(counts) == 6
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "expiry")) == 12
    assert [balance(p.household_id) for p in people] == [0] * 6
    assert ledger.verify() == []
