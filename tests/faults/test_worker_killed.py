"""An RQ worker killed mid-job (a transit CSV import): another worker takes the job over, every row credited once."""
import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.activities.models import Action
from app.columns import utcnow
from app.extensions import db
from app.integrations.models import IntegrationImport
from app.jobs import Job
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount
from tests.faults import needs_postgres_and_redis
from tests.integrations.conftest import CST, card_of

pytestmark = [pytest.mark.committing, needs_postgres_and_redis]

RESIDENTS, TRIPS_EACH = 4, 150  # 600 rows: 3 chunks of 200, killed during the second
LEASE = 3


def _csv(cards) -> bytes:
    when = (utcnow() - timedelta(hours=2)).astimezone(CST).isoformat()
    lines = ["external_id,household_card,action_type,variant,quantity,unit,occurred_at"]
    for n, card in enumerate(cards):
        lines += [f"trip-{n}-{i},{card},transit,metro,3,km,{when}" for i in range(TRIPS_EACH)]
    return ("\n".join(lines) + "\n").encode()


def _import_state(import_id):
    db.session.remove()
    return db.session.get(IntegrationImport, import_id)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except FileNotFoundError:
        return []


def _kill_worker_and_its_horse(worker) -> None:
    """SIGKILL the worker and the work horse it forked (RQ puts the horse in its own process group)."""
    horses = _children(worker.pid)
    os.kill(worker.pid, signal.SIGKILL)
    for horse in horses:
        try:
            os.kill(horse, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait(10)


def test_a_worker_killed_mid_import_is_taken_over_and_every_row_is_credited_exactly_once(
        app, client, monkeypatch, admin, operator, make_resident, private_redis, processes):
    people = [make_resident() for _ in range(RESIDENTS)]
    cards = [card_of(person) for person in people]
    households = [person.household_id for person in people]
    monkeypatch.setitem(app.config, "REDIS_URL", private_redis.url)  # the upload is pushed to RQ, not run inline
    monkeypatch.setitem(app.config, "JOBS_INLINE", False)
    uploaded = client.post(f"/api/v1/integrations/{operator.id}/imports", data=_csv(cards),
                           headers={**admin.headers, "Content-Type": "text/csv"})
    assert uploaded.status_code == 202, uploaded.get_data(as_text=True)
    import_id = uploaded.get_json()["id"]
    worker_env = {"REDIS_URL": private_redis.url, "JOB_LEASE_SECONDS": LEASE, "JOB_REQUEUE_AFTER_SECONDS": 0}

    first = processes.flask("worker-1", "worker", **worker_env)
    for _ in range(1200):
        progress = _import_state(import_id).processed_rows
        if progress >= 200:
            break
        assert first.poll() is None, first.log_path.read_text()
        time.sleep(0.025)
    _kill_worker_and_its_horse(first)
    killed_at = _import_state(import_id)
    assert killed_at.status == "running" and 200 <= killed_at.processed_rows < RESIDENTS * TRIPS_EACH
    job = db.session.scalar(select(Job).where(Job.name == "integrations.import"))
    assert (job.state, job.attempts) == ("running", 1)
    time.sleep(max(0.0, (job.lease_until - utcnow()).total_seconds()) + 0.2)  # the dead runner's lease runs out

    processes.finish(processes.flask("worker-2", "worker", "--burst", **worker_env))

    done = _import_state(import_id)
    assert (done.status, done.processed_rows, done.created_count, done.duplicate_count, done.rejected_count) == (
        "done", RESIDENTS * TRIPS_EACH, RESIDENTS * TRIPS_EACH, 0, 0)
    job = db.session.get(Job, job.id)
    assert (job.state, job.attempts) == ("done", 2)
    actions = db.session.execute(
        select(func.count(), func.count(func.distinct(Action.external_id)), func.sum(Action.points))
        .where(Action.integration_id == operator.id)).one()
    assert actions[0] == actions[1] == RESIDENTS * TRIPS_EACH
    wallets = db.session.scalar(select(func.sum(LedgerAccount.balance)).where(
        LedgerAccount.kind == "household", LedgerAccount.owner_id.in_(households)))
    assert wallets == actions[2] > 0
    assert ledger.verify() == []
