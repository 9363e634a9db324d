"""Reads that may be served by a PostgreSQL streaming replica (`DATABASE_READ_URL`).

Only reads that tolerate the replica's lag go there: a district export aggregates the daily rollups
of the days it covers, in one consistent snapshot. Whatever a resident, clerk or staff member has
just written — balances, queues, lists — is read from the primary, so nobody misses their own write.
Without `DATABASE_READ_URL` every read uses the primary's session.
"""
import threading
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.extensions import begin_sqlite_transactions, db

_lock = threading.Lock()


def replica_engine():
    """The engine of `DATABASE_READ_URL`, made once per app; None when it is not set."""
    url = current_app.config.get("DATABASE_READ_URL")
    if not url:
        return None
    with _lock:
        engine = current_app.extensions.get("replica_engine")
        if engine is None:
            options = {"pool_pre_ping": True} if url.startswith("postgresql") else {}
            engine = current_app.extensions["replica_engine"] = create_engine(url, **options)
            begin_sqlite_transactions(engine)
        return engine


@contextmanager
def read_session():
    """A read-only session on the replica, in one snapshot (REPEATABLE READ); the primary's without one."""
    engine = replica_engine()
    if engine is None:
        yield db.session
        return
    options = {"read_only": True}
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with Session(engine.execution_options(**options)) as session, session.begin():
        yield session
