"""Rate limits hold however many gunicorn workers serve the API (real processes, real database)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.extensions import db
from tests.fixtures import PASSWORD, next_phone

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def gunicorn(app):
    """The API under gunicorn with several workers on the test database, without Redis."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "RATELIMIT_STORAGE_URI", "LOGIN_FAILURE_LIMIT", "LOGIN_LIMIT")}
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], APP_ENV="test",
               PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
               RATELIMIT_KEY_PREFIX=app.config["RATELIMIT_KEY_PREFIX"])
    # Its log goes to a file: a pipe nobody reads fills up and stalls gunicorn.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
         "app:create_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120  # a loaded 2-core machine can take a while to boot the workers
        while True:
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait(timeout=20)
                    log.seek(0)
                    raise RuntimeError(f"gunicorn did not start: {log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        log.close()


@pytest.mark.committing
def test_wrong_passwords_for_one_phone_stop_at_the_limit_across_workers(gunicorn, make_resident):
    phone = next_phone()
    make_resident(phone=phone)
    db.session.remove()  # SQLite: release this process's write lock before the workers write

    statuses = [_post(f"{gunicorn}/auth/login", {"phone": phone, "password": "wrong-" + PASSWORD})
                for _ in range(25)]

    assert statuses.count(401) == 10, statuses  # LOGIN_FAILURE_LIMIT: 10 per 15 minutes, whichever worker
    assert statuses[10:] == [429] * 15
    assert _post(f"{gunicorn}/auth/login", {"phone": phone, "password": PASSWORD}) == 429


@pytest.mark.committing
def test_registrations_for_one_phone_stop_at_the_limit_across_workers(gunicorn):
    phone = next_phone()

    statuses = [_post(f"{gunicorn}/auth/register", {"phone": phone, "password": PASSWORD})
                for _ in range(14)]  # invalid bodies (no community): each still counts

    assert 429 not in statuses[:10] and statuses[10:] == [429] * 4, statuses  # REGISTER_PHONE_LIMIT: 10/hour


@pytest.mark.committing
def test_a_limit_keyed_on_the_caller_answers_at_once(gunicorn, make_resident):
    """The caller is loaded (on SQLite: the write lock taken) before such a limit counts: no wait, no 409."""
    resident = make_resident()
    db.session.remove()
    started = time.monotonic()

    status = _post(f"{gunicorn}/redemption-codes", {"reward_id": "0" * 32}, resident.headers)

    assert status == 404  # no such reward: the limit counted and let it through
    assert time.monotonic() - started < 5
