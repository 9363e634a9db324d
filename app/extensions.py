"""Extension handles, bound to the app in create_app."""
import http
import select

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate

import marshmallow as ma
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

from . import driver

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, the body of every 4xx and 5xx reply."""

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable snake_case error code"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
        metadata={"description": "422 only: field path → messages"},
    )


class ProblemApi(Api):
    """flask-smorest Api whose documented error replies are application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = "application/problem+json"
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, "application/problem+json")
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = ProblemApi()
limiter = Limiter(key_func=get_remote_address, strategy="fixed-window")


def core(statement, params=None):
    """Run a Core statement (of tables, not mapped classes) on the session's connection.

    The same transaction as `db.session.execute`, without the Session's per-statement work
    (about 0.1 ms a statement here), for the hot paths. Nothing is autoflushed: a read of rows the
    session may hold changed objects of calls `db.session.flush()` first (free when nothing is pending).
    A statement object run again (pre-built) goes straight to the driver's cursor (`driver.execute`)
    on PostgreSQL; its result offers rows, scalars and rowcount.
    """
    return run(db.session.connection(), statement, params)


def run(connection, statement, params=None):
    """`core` on a given connection (a session event's, say)."""
    return driver.execute(connection, statement, params) or connection.execute(statement, params)


def begin_sqlite_transactions(engine) -> None:
    """On a SQLite engine, begin each transaction ourselves (connections run with isolation_level
    None, `app/__init__.py`): BEGIN IMMEDIATE, so that a writer takes the write lock up front, or a
    plain BEGIN for a read-only session (app/replica.py). Registered per engine, not on the Engine
    class: an engine with a statement-level listener makes SQLAlchemy dispatch events around every
    statement it runs, and PostgreSQL's engines need none."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "begin", _begin_sqlite):
        event.listen(engine, "begin", _begin_sqlite)


def _begin_sqlite(conn):
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")


@event.listens_for(Pool, "checkout")
def _refuse_closed_connection(dbapi_connection, connection_record, connection_proxy):
    """Hand out no pooled PostgreSQL connection that the server has already closed, at no round trip.

    Instead of `pool_pre_ping` (a SELECT 1 per checkout, so per request): a server that ends an idle
    connection (restart, failover, pg_terminate_backend, idle_session_timeout) sends its goodbye and
    closes the socket, which is then readable; an idle, healthy connection's socket has nothing to read.
    DisconnectionError makes the pool drop this connection and check out (or open) another.
    A connection lost without a word (a cable pulled) is found by its first statement, which
    answers 503 database_unavailable; `pool_recycle` replaces connections before idle timeouts.
    """
    if getattr(dbapi_connection, "pgconn", None) is None:
        return  # SQLite: no server to lose
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the pooled connection is closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed the pooled connection")
