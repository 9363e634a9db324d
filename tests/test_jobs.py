"""Background jobs: staged in the transaction, pushed after the commit, run once — inline or through RQ."""
import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db

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
