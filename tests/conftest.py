"""Test harness: one app per run, the schema built by the real migrations, a rolled-back transaction per test.

Every test-client request runs in its own app context — its own `g` and its
own session, as under a real server — on the test's connection. Before a
request the test body's session commits (a savepoint in the per-test
transaction), so the request sees what the test wrote and the test body
reloads afterwards what the request committed.

TEST_DATABASE_URL picks the database (default: a fresh SQLite file) and
TEST_REDIS_URL turns Redis on (rate-limit storage, RQ). Tests marked
`committing` run outside the per-test transaction (races across real
threads and connections) and the tables are emptied after them.
"""
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.activities.factors import forget_sets_in_force
from app.auth import login_cache
from app.extensions import db, limiter

# Only an explicit development, demo or test setting may run on the built-in secrets (app/config.py);
# processes the tests start (gunicorn, flask, rq) inherit this.
os.environ["APP_ENV"] = "test"
ON_CI = os.environ.get("CI", "").lower() == "true"
_TMP = Path(tempfile.mkdtemp(prefix="sjc-tests-"))
DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"
REDIS_URL = os.environ.get("TEST_REDIS_URL") or None


def pytest_configure(config):
    config.addinivalue_line("markers", "committing: runs with real commits (races); tables are emptied after")
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL row locks")


def test_config() -> dict:
    url = DATABASE_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": REDIS_URL,
        "JOBS_INLINE": True,
        "RATELIMIT_STORAGE_URI": REDIS_URL or "memory://",
        "RATELIMIT_KEY_PREFIX": f"sjc-test-{uuid.uuid4().hex[:8]}",
        "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": f"LIMITS-test-{uuid.uuid4().hex[:8]}"} if REDIS_URL else {},
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "EXPORT_DIR": str(_TMP / "exports"),
        "I18N_CHECK_CATALOGUE": True,  # every problem message any test meets must have a Chinese translation
    }


def _reset_schema(app) -> None:
    import flask_migrate

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        flask_migrate.upgrade()


class RequestContextClient(FlaskClient):
    """A test client whose every request gets a fresh app context (so a fresh `g` and session)."""

    def open(self, *args, **kwargs):
        if has_app_context():
            db.session.commit()  # the request sees what the test body wrote; the body's objects reload after
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app():
    if ON_CI and not REDIS_URL and DATABASE_URL.startswith("postgresql"):
        raise RuntimeError("CI runs the PostgreSQL suite with Redis: set TEST_REDIS_URL")
    application = create_app(test_config())
    application.test_client_class = RequestContextClient
    _reset_schema(application)
    if REDIS_URL:
        from redis import Redis

        Redis.from_url(REDIS_URL).ping()  # unreachable Redis is a failure, never a skip
    return application


@pytest.fixture(scope="session", autouse=True)
def _every_problem_message_has_a_chinese_translation():
    """After the run: each title, detail and field message a reply carried is in the zh catalogue."""
    yield
    from app.i18n import UNTRANSLATED

    missing = "\n".join(sorted(UNTRANSLATED))
    assert not UNTRANSLATED, f"not in app/translations/zh/LC_MESSAGES/messages.po:\n{missing}"


@pytest.fixture(autouse=True)
def _isolated(request, app):
    """Each test in a transaction rolled back at the end; app commits become savepoints."""
    limiter.reset()
    login_cache.clear()  # no test sees a login another test left in this process's cache
    forget_sets_in_force()  # nor a set in force that another test published and rolled back
    ctx = app.app_context()
    ctx.push()
    if request.node.get_closest_marker("committing"):
        try:
            yield
        finally:
            db.session.remove()
            _empty_tables()
            ctx.pop()
        return
    engines = db._app_engines[app]  # Flask-SQLAlchemy picks the bind from here, not from the session
    engine = engines[None]
    connection = engine.connect()
    outer = connection.begin()
    original = db.session
    engines[None] = connection
    db.session = db._make_scoped_session({"join_transaction_mode": "create_savepoint"})
    try:
        yield
    finally:
        db.session.remove()
        db.session = original
        engines[None] = engine
        if outer.is_active:
            outer.rollback()
        connection.close()
        ctx.pop()


def _empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def is_postgres(app):
    return db.engine.dialect.name == "postgresql"


from tests.fixtures import *  # noqa: E402,F401,F403  shared fixtures and builders
