"""Background jobs through an outbox: staged in the transaction, pushed after the commit.

`enqueue` writes a job row in the caller's transaction. Once that
transaction commits, `dispatch` pushes the row's id to RQ (or, with no Redis
configured, runs it inline in this process). A job runs at most once to
completion: `run_job` claims its row with a guarded UPDATE, so RQ delivering
it twice, or `requeue_stale` re-pushing it, does no harm.
"""
import json
import logging
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import String, Text, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .columns import UTCDateTime, new_id, utcnow
from .extensions import db
from .transaction import transaction

log = logging.getLogger("app.jobs")
QUEUE = "default"
EXTENSION = "job_handlers"


class Job(db.Model):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60))
    args: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="queued", index=True)  # queued|running|done|failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def register_handlers(app, handlers: dict) -> None:
    """Register job functions under stable names (create_app does, in one visible list).

    A value is the function, or `(function, "chunked")` for a job that opens a
    `transaction()` per chunk itself instead of running as one unit of work.
    """
    registry = app.extensions.setdefault(EXTENSION, {})
    for name, spec in handlers.items():
        run, mode = spec if isinstance(spec, tuple) else (spec, None)
        registry[name] = (run, mode == "chunked")


def handlers() -> dict:
    return current_app.extensions[EXTENSION]


def enqueue(name: str, **kwargs) -> Job:
    """Stage a job in the current transaction; it is pushed only if that transaction commits."""
    if name not in handlers():
        raise KeyError(f"no job handler named {name}")
    job = Job(id=new_id(), name=name, args=json.dumps(kwargs))
    db.session.add(job)
    db.session.info.setdefault("staged_jobs", []).append(job.id)
    return job


@event.listens_for(Session, "after_commit")
def _committed(session):
    staged = session.info.pop("staged_jobs", None)
    if staged:
        session.info.setdefault("committed_jobs", []).extend(staged)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop("staged_jobs", None)


def dispatch() -> None:
    """Push (or run inline) every job whose transaction has committed."""
    if not has_app_context():
        return
    ids = db.session.info.pop("committed_jobs", None)
    if not ids:
        return
    if current_app.config["JOBS_INLINE"]:
        for job_id in ids:
            run_job(job_id)
        return
    try:
        queue = rq_queue()
        for job_id in ids:
            queue.enqueue("app.jobs.run_in_worker", job_id)
    except Exception:  # the rows are committed: `flask jobs requeue` pushes them again
        log.exception("could not push %d job(s) to Redis; they stay queued for `jobs requeue`", len(ids))


def rq_queue():
    from redis import Redis
    from rq import Queue

    return Queue(QUEUE, connection=Redis.from_url(current_app.config["REDIS_URL"]))


def run_job(job_id: str) -> str:
    """Claim and run one job; returns its final state.

    Three units of work: the claim, the job's own work, and its outcome. A job
    whose work is one unit of work runs inside `transaction()` here; one that
    commits in chunks (an import) declares `chunked=True` and opens a
    `transaction()` per chunk itself.
    """
    with transaction():
        claimed = db.session.execute(
            update(Job).where(Job.id == job_id, Job.state == "queued")
            .values(state="running", started_at=utcnow()).execution_options(synchronize_session=False)
        ).rowcount
    if not claimed:
        return "skipped"
    job = db.session.get(Job, job_id)
    name, args = job.name, json.loads(job.args)
    run, chunked = handlers()[name]
    try:
        if chunked:
            run(**args)
        else:
            with transaction():
                run(**args)
        state, error = "done", None
    except Exception as exc:  # recorded on the job row; the job's own writes are rolled back
        log.exception("job %s (%s) failed", job_id, name)
        state, error = "failed", exc.__class__.__name__
    with transaction():
        db.session.execute(
            update(Job).where(Job.id == job_id).values(state=state, error=error, finished_at=utcnow())
        )
    dispatch()
    return state


def run_in_worker(job_id: str) -> str:
    """Entry point for RQ workers: an app context around run_job."""
    from . import create_app

    app = current_app._get_current_object() if has_app_context() else create_app()
    with app.app_context():
        return run_job(job_id)


def requeue_stale(older_than: timedelta = timedelta(minutes=5)) -> int:
    """Push again jobs still queued long after their commit (a push that was lost)."""
    ids = db.session.scalars(
        select(Job.id).where(Job.state == "queued", Job.created_at < utcnow() - older_than)
    ).all()
    db.session.info.setdefault("committed_jobs", []).extend(ids)
    dispatch()
    return len(ids)
