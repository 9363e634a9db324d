"""Faults the suite must survive, with real processes: Redis stopping, the database connection dropping,
a worker killed mid-job. PostgreSQL + Redis only (the second half of scripts/test.sh); under CI that half
always runs, so these never skip there."""
import os
import shutil
import socket

import pytest

from tests.conftest import DATABASE_URL, REDIS_URL

needs_postgres_and_redis = pytest.mark.skipif(
    not (DATABASE_URL.startswith("postgresql") and REDIS_URL),
    reason="faults with real processes run on the PostgreSQL + Redis half of the suite",
)


def plain_url() -> str:
    """TEST_DATABASE_URL as libpq (and psycopg) take it."""
    return DATABASE_URL.replace("postgresql+psycopg://", "postgresql://", 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    assert found, "redis-server is needed for the Redis fault tests (apt-get install redis-server)"
    return found


def env_for(app, **overrides) -> dict:
    """Environment for a real `flask`/`gunicorn` process of this app on the test database."""
    env = dict(os.environ)
    env.update({
        "APP_ENV": "development",
        "DATABASE_URL": plain_url(),
        "SECRET_KEY": app.config["SECRET_KEY"],
        "JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"],
        "PASSWORD_HASH_METHOD": app.config["PASSWORD_HASH_METHOD"],
        "EXPORT_DIR": app.config["EXPORT_DIR"],
        "LOG_LEVEL": "WARNING",
    })
    env.update({k: str(v) for k, v in overrides.items()})
    return env
