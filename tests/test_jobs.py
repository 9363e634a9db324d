"""Background jobs: staged in the transaction, pushed after the commit, run once — inline or through RQ."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import jobs
from app.columns import utcnow
from app.extensions import db
from app.transaction import transaction

RAN = []


def _note(label):
    RAN.append(label)


@pytest.fixture(autouse=True)
def _clear_runs(app):
    jobs.register_handlers(app, {"tests.note": _note})
    RAN.clear()


def test_a_job_runs_only_after_its_transaction_commits():
    job = jobs.enqueue("tests.note", label="committed")

    assert RAN == []  # staged, not run
    db.session.commit()
    jobs.dispatch()

    assert RAN == ["committed"]
    assert db.session.get(jobs.Job, job.id).state == "done"


def test_a_job_staged_in_a_rolled_back_transaction_never_runs():
    jobs.enqueue("tests.note", label="rolled back")

    db.session.rollback()
    jobs.dispatch()

    assert RAN == []
    assert db.session.scalars(select(jobs.Job).where(jobs.Job.name == "tests.note")).all() == []


def test_a_job_delivered_twice_runs_once():
    job = jobs.enqueue("tests.note", label="once")
    db.session.commit()
    jobs.dispatch()

    assert jobs.run_job(job.id) == "skipped"
    assert RAN == ["once"]


def test_an_unknown_job_name_is_refused_at_staging():
    with pytest.raises(KeyError):
        jobs.enqueue("tests.no_such_job")


@pytest.mark.committing
def test_jobs_reach_a_worker_through_redis_when_it_is_configured(app):
    """With Redis (the PostgreSQL run) the job goes through a real RQ queue and worker; without, inline."""
    redis_url = app.config["REDIS_URL"]
    app.config["JOBS_INLINE"] = redis_url is None
    try:
        job_id = jobs.enqueue("tests.note", label="via worker").id
        db.session.commit()
        if redis_url:
            queue = jobs.rq_queue()
            queue.empty()
            jobs.dispatch()
            assert RAN == [] and queue.count == 1  # pushed, not run here

            from rq import SimpleWorker

            SimpleWorker([queue], connection=queue.connection).work(burst=True)
        else:
            jobs.dispatch()
        db.session.remove()
        assert RAN == ["via worker"]
        assert db.session.get(jobs.Job, job_id).state == "done"
    finally:
        app.config["JOBS_INLINE"] = True


# ---------------------------------------------------------------- lost pushes and dead runners


def _staged(label):
    job = jobs.enqueue("tests.note", label=label)
    db.session.commit()
    db.session.info.pop("committed_jobs", None)  # as if its push had been lost
    return job.id


def _left_running_by_a_dead_runner(job_id, *, attempts=1, lease_seconds=-1):
    db.session.execute(update(jobs.Job).where(jobs.Job.id == job_id).values(
        state="running", attempts=attempts, started_at=utcnow(), lease_until=utcnow() + timedelta(seconds=lease_seconds)))
    db.session.commit()


def test_a_job_whose_push_fails_stays_queued_and_the_sweep_runs_it_once(app, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "JOBS_INLINE", False)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    job = jobs.enqueue("tests.note", label="pushed later")
    db.session.commit()

    jobs.dispatch()  # the push fails: logged, never raised

    assert db.session.get(jobs.Job, job.id).state == "queued" and RAN == []
    monkeypatch.setitem(app.config, "JOBS_INLINE", True)
    assert jobs.requeue_stale(timedelta(0)) == 1
    assert jobs.requeue_stale(timedelta(0)) == 0
    assert RAN == ["pushed later"]
    assert db.session.get(jobs.Job, job.id, populate_existing=True).state == "done"


def test_a_job_whose_runner_died_is_run_again_once_its_lease_runs_out():
    job_id = _staged("taken over")
    _left_running_by_a_dead_runner(job_id)

    assert jobs.requeue_stale() == 1

    job = db.session.get(jobs.Job, job_id, populate_existing=True)
    assert RAN == ["taken over"] and (job.state, job.attempts) == ("done", 2)


def test_a_running_job_within_its_lease_is_left_to_its_runner():
    job_id = _staged("still running")
    _left_running_by_a_dead_runner(job_id, lease_seconds=600)

    assert jobs.requeue_stale(timedelta(0)) == 0

    assert RAN == [] and db.session.get(jobs.Job, job_id, populate_existing=True).state == "running"


def test_a_job_abandoned_on_every_attempt_is_given_up_as_failed():
    job_id = _staged("poison")
    _left_running_by_a_dead_runner(job_id, attempts=jobs.MAX_ATTEMPTS)

    assert jobs.requeue_stale(timedelta(0)) == 0

    job = db.session.get(jobs.Job, job_id, populate_existing=True)
    assert RAN == [] and (job.state, job.error) == ("failed", "abandoned")


def test_a_chunked_job_renews_its_lease_as_it_goes(app):
    leases = []

    def chunked():
        for _ in range(2):
            with transaction():
                jobs.keep_alive()
            leases.append(db.session.scalar(select(jobs.Job.lease_until).where(jobs.Job.name == "tests.chunked")))

    jobs.register_handlers(app, {"tests.chunked": (chunked, "chunked")})
    job = jobs.enqueue("tests.chunked")
    db.session.commit()
    jobs.dispatch()

    assert db.session.get(jobs.Job, job.id, populate_existing=True).state == "done"
    assert leases[0] <= leases[1] and leases[0] > utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] - 60)


def _pushed_to_rq(app, monkeypatch, label):
    """A job enqueued, committed and pushed to an emptied RQ queue; the queue and the job's id."""
    monkeypatch.setitem(app.config, "JOBS_INLINE", False)
    queue = jobs.rq_queue()
    queue.empty()
    job_id = jobs.enqueue("tests.note", label=label).id
    db.session.commit()
    jobs.dispatch()
    return queue, job_id


@pytest.mark.committing
@pytest.mark.skipif("not __import__('tests.conftest').conftest.REDIS_URL", reason="needs Redis (the PostgreSQL run)")
def test_the_sweep_does_not_push_again_a_job_still_waiting_in_redis(app, monkeypatch):
    queue, job_id = _pushed_to_rq(app, monkeypatch, "waiting")

    assert jobs.requeue_stale(timedelta(0)) == 0
    assert queue.count == 1

    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.remove()
    assert RAN == ["waiting"] and db.session.get(jobs.Job, job_id).state == "done"


def test_a_job_of_one_unit_of_work_holds_its_lease_past_the_time_rq_lets_it_run(app):
    """It cannot renew its lease, so nobody may take it over while it may still be running."""
    leases = []

    def long_job():
        leases.append(db.session.scalar(select(jobs.Job.lease_until).where(jobs.Job.name == "tests.long")))

    jobs.register_handlers(app, {"tests.long": long_job})
    jobs.enqueue("tests.long")
    db.session.commit()
    jobs.dispatch()

    assert leases[0] > utcnow() + timedelta(seconds=app.config["JOB_TIMEOUT_SECONDS"])


@pytest.mark.committing
@pytest.mark.skipif("not __import__('tests.conftest').conftest.REDIS_URL", reason="needs Redis (the PostgreSQL run)")
def test_a_job_reaches_rq_with_the_configured_timeout_not_rqs_180_seconds(app, monkeypatch):
    queue, job_id = _pushed_to_rq(app, monkeypatch, "timed")

    assert queue.fetch_job(job_id).timeout == app.config["JOB_TIMEOUT_SECONDS"] == 3600
    queue.empty()
