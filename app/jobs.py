"""Background jobs through an outbox: staged in the transaction, pushed after the commit.

`enqueue` writes a job row in the caller's transaction. Once that
transaction commits, `dispatch` pushes the row's id to RQ (or, with no Redis
configured, runs it inline in this process). A job runs at most once to
completion: `run_job` claims its row with a guarded UPDATE, so RQ delivering
it twice, or `requeue_stale` re-pushing it, does no harm.

Nothing committed is lost. A push that fails (Redis down) leaves the row
queued; a runner that dies (a worker killed mid-job) leaves it running with a
lease that runs out (JOB_LEASE_SECONDS; a chunked job renews it with each
chunk through `keep_alive`). `requeue_stale` — run by every `flask worker` at
start and every JOB_SWEEP_SECONDS, and by `flask jobs requeue` — pushes both
again; a chunked job resumes after its last committed chunk. A job abandoned
MAX_ATTEMPTS times is marked failed instead.
"""
import json
import logging
from contextvars import ContextVar
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import Integer, String, Text, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .columns import UTCDateTime, new_id, utcnow
from .extensions import db
from .redis_client import redis_client
from .transaction import transaction

log = logging.getLogger("app.jobs")
QUEUE = "default"
EXTENSION = "job_handlers"
MAX_ATTEMPTS = 5
_running: ContextVar[str | None] = ContextVar("running_job", default=None)


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
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # claims so far
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a running job not renewed by then is abandoned


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
            # One RQ job per row, by its id; RQ stops a job at JOB_TIMEOUT_SECONDS (its own default is 180 s).
            queue.enqueue("app.jobs.run_in_worker", job_id, job_id=job_id,
                          job_timeout=current_app.config["JOB_TIMEOUT_SECONDS"])
    except Exception:  # the rows are committed and stay queued: a worker's sweep pushes them again
        log.exception("could not push %d job(s) to Redis; they stay queued for the next sweep", len(ids))


def rq_queue():
    from rq import Queue

    return Queue(QUEUE, connection=redis_client())  # bounded waits: the request has already committed


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["JOB_LEASE_SECONDS"])


def _whole_run_lease() -> timedelta:
    """The lease of a job that cannot renew it (one unit of work): past the time RQ lets it run."""
    return timedelta(seconds=current_app.config["JOB_TIMEOUT_SECONDS"] + 60)


def run_job(job_id: str) -> str:
    """Claim and run one job; returns its final state.

    Three units of work: the claim, the job's own work, and its outcome. A job
    whose work is one unit of work runs inside `transaction()` here; one that
    commits in chunks (an import) declares `chunked=True` and opens a
    `transaction()` per chunk itself.
    """
    with transaction():
        now = utcnow()
        claimed = db.session.execute(
            update(Job).where(Job.id == job_id, Job.state == "queued")
            .values(state="running", started_at=now, lease_until=now + _lease(), attempts=Job.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed:
            job = db.session.get(Job, job_id, populate_existing=True)
            name, args = job.name, json.loads(job.args)
            run, chunked = handlers()[name]
            if not chunked:  # it cannot renew its lease: nobody may take it over while it may still run
                job.lease_until = now + _whole_run_lease()
    if not claimed:
        return "skipped"
    token = _running.set(job_id)
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
    finally:
        _running.reset(token)
    with transaction():
        db.session.execute(
            update(Job).where(Job.id == job_id).values(state=state, error=error, finished_at=utcnow())
        )
    dispatch()
    return state


def keep_alive() -> None:
    """Renew the running job's lease; a chunked job calls it in each chunk's unit of work. Does not commit."""
    job_id = _running.get()
    if job_id is not None:
        db.session.execute(
            update(Job).where(Job.id == job_id, Job.state == "running").values(lease_until=utcnow() + _lease())
            .execution_options(synchronize_session=False)
        )


def run_in_worker(job_id: str) -> str:
    """Entry point for RQ workers: an app context around run_job."""
    from . import create_app

    app = current_app._get_current_object() if has_app_context() else create_app()
    with app.app_context():
        return run_job(job_id)


def requeue_stale(older_than: timedelta | None = None) -> int:
    """Push again what was lost: jobs queued longer than `older_than` and running jobs whose lease ran out.

    `older_than` defaults to JOB_REQUEUE_AFTER_SECONDS (a fresh row is usually being pushed by its
    own request; pushing it twice does no harm). Returns how many were pushed.
    """
    if older_than is None:
        older_than = timedelta(seconds=current_app.config["JOB_REQUEUE_AFTER_SECONDS"])
    now = utcnow()
    abandoned = (Job.state == "running", Job.lease_until < now)
    with transaction():
        given_up = db.session.execute(
            update(Job).where(*abandoned, Job.attempts >= MAX_ATTEMPTS)
            .values(state="failed", error="abandoned", finished_at=now).execution_options(synchronize_session=False)
        ).rowcount
        revived = db.session.scalars(select(Job.id).where(*abandoned).with_for_update()).all()
        if revived:
            db.session.execute(
                update(Job).where(Job.id.in_(revived), *abandoned).values(state="queued", lease_until=None)
                .execution_options(synchronize_session=False)
            )
        lost = db.session.scalars(
            select(Job.id).where(Job.state == "queued", Job.created_at < now - older_than).order_by(Job.created_at)
        ).all()
    if given_up or revived:
        log.warning("jobs sweep: %d abandoned job(s) queued again, %d given up after %d attempts",
                    len(revived), given_up, MAX_ATTEMPTS)
    waiting = _waiting_in_rq(lost)
    ids = list(dict.fromkeys([*revived, *(job_id for job_id in lost if job_id not in waiting)]))
    db.session.info.setdefault("committed_jobs", []).extend(ids)
    dispatch()
    return len(ids)


def _waiting_in_rq(ids) -> set:
    """Of these queued rows, those RQ still holds (queued, or taken by a live worker): a backlog is not pushed twice."""
    if not ids or current_app.config["JOBS_INLINE"]:
        return set()
    from rq.job import Job as RQJob, JobStatus

    try:
        found = RQJob.fetch_many(list(ids), connection=rq_queue().connection)
    except Exception:  # Redis is down: the push that follows fails and is logged
        return set()
    return {job.id for job in found
            if job is not None and job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED)}


def run_worker(burst: bool = False) -> None:
    """`flask worker`: an RQ worker that also runs `requeue_stale` at start and every JOB_SWEEP_SECONDS."""
    from redis import Redis
    from rq import Queue, Worker

    app = current_app._get_current_object()
    sweep_every = int(app.config["JOB_SWEEP_SECONDS"])

    class OutboxWorker(Worker):
        def run_maintenance_tasks(self):
            super().run_maintenance_tasks()  # raises while Redis is down: the sweep waits for it
            try:
                with app.app_context():
                    requeue_stale()
            except Exception:  # the database is down: the next maintenance round tries again
                log.exception("jobs sweep failed")

        def main_work_horse(self, job, queue):
            # The forked horse must not share the parent's pooled database connections.
            for engine in db.engines.values():
                engine.dispose(close=False)
            super().main_work_horse(job, queue)

    connection = Redis.from_url(app.config["REDIS_URL"])
    # The idle wait (worker_ttl - 15 s) is bounded by the sweep interval, so an idle worker sweeps on time.
    OutboxWorker([Queue(QUEUE, connection=connection)], connection=connection,
                 maintenance_interval=sweep_every, worker_ttl=sweep_every + 15).work(burst=burst)
