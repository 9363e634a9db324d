"""The per-process login cache: fewer reads, and revocations that still take effect (app/auth.py)."""
import contextlib
import threading

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine

from app.accounts.models import LoginSession, User
from app.auth import LoginCache, login_cache
from app.columns import utcnow
from app.config import load_config
from app.extensions import db
from tests.fixtures import bearer

WALLET = "/api/v1/wallet"


@contextlib.contextmanager
def statements():
    """Every SQL statement sent while the block runs."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def reads_login(sent) -> list[str]:
    return [s for s in sent if "FROM users" in s or "login_sessions" in s]


def selects(sent) -> list[str]:
    return [s for s in sent if s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand: `clock.advance(seconds)`."""

    class Clock:
        now = 1000.0

        def __call__(self):
            return self.now

        def advance(self, seconds):
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(login_cache, "clock", fake)
    return fake


def test_a_cached_login_is_not_read_again(client, resident):
    with statements() as first:
        assert client.get(WALLET, headers=resident.headers).status_code == 200
    with statements() as second:
        again = client.get(WALLET, headers=resident.headers)

    assert again.status_code == 200
    assert again.get_json()["household_id"] == resident.household_id
    assert len(reads_login(first)) == 1
    assert reads_login(second) == []
    assert len(selects(second)) == len(selects(first)) - 1
    assert not [s for s in second if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]


def test_a_cache_miss_reads_the_login_its_user_and_household_in_one_statement(client, resident):
    with statements() as sent:
        reply = client.get(WALLET, headers=resident.headers)

    assert reply.status_code == 200 and reply.get_json()["household_id"] == resident.household_id
    (login,) = reads_login(sent)
    assert "households" in login
    assert [s for s in sent if "households" in s] == [login]


def test_with_the_cache_off_every_request_reads_the_login(client, resident, monkeypatch):
    monkeypatch.setitem(client.application.config, "AUTH_CACHE_SECONDS", 0)

    with statements() as sent:
        for _ in range(3):
            assert client.get(WALLET, headers=resident.headers).status_code == 200

    assert len(reads_login(sent)) == 3
    assert len(login_cache) == 0


def test_logout_ends_the_cached_access_token_at_once(client, resident):
    assert client.get(WALLET, headers=resident.headers).status_code == 200

    assert client.post("/api/v1/auth/logout", headers=resident.headers).status_code == 204
    after = client.get(WALLET, headers=resident.headers)

    assert after.status_code == 401
    assert after.get_json()["code"] == "unauthenticated"


def test_a_login_revoked_by_another_process_ends_here_once_the_cache_expires(client, resident, monkeypatch,
                                                                              clock):
    monkeypatch.setitem(client.application.config, "AUTH_CACHE_SECONDS", 2)
    assert client.get(WALLET, headers=resident.headers).status_code == 200
    session_id = db.session.scalar(db.select(LoginSession.id).where(LoginSession.user_id == resident.id))
    # Another gunicorn worker logs out: the row changes, this process's cache is not told.
    db.session.execute(update(LoginSession).where(LoginSession.id == session_id).values(revoked_at=utcnow()))
    db.session.commit()

    clock.advance(1.9)
    within = client.get(WALLET, headers=resident.headers)
    clock.advance(0.2)
    after = client.get(WALLET, headers=resident.headers)

    assert within.status_code == 200  # the documented bound: up to AUTH_CACHE_SECONDS
    assert after.status_code == 401
    assert after.get_json()["code"] == "unauthenticated"


def test_a_reused_refresh_token_ends_the_cached_access_tokens(client, resident):
    first = resident.tokens
    assert client.get(WALLET, headers=bearer(first)).status_code == 200
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    assert client.get(WALLET, headers=bearer(rotated)).status_code == 200

    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert reuse.status_code == 401
    assert client.get(WALLET, headers=bearer(first)).status_code == 401
    assert client.get(WALLET, headers=bearer(rotated)).status_code == 401


def test_a_new_invite_code_shows_on_me_at_once(client, resident):
    before = client.get("/api/v1/me", headers=resident.headers).get_json()["household"]["invite_code"]

    fresh = client.post("/api/v1/households/invite-code", headers=resident.headers)
    shown = client.get("/api/v1/me", headers=resident.headers).get_json()["household"]["invite_code"]

    assert fresh.status_code == 200
    assert fresh.get_json()["invite_code"] != before
    assert shown == fresh.get_json()["invite_code"]


def test_a_user_changed_in_this_process_is_read_again(client, resident):
    assert client.get("/api/v1/me", headers=resident.headers).get_json()["roles"] == ["resident"]
    user = db.session.get(User, resident.id)
    user.display_name = "改名居民"
    user.role = "district_admin"
    db.session.commit()

    me = client.get("/api/v1/me", headers=resident.headers).get_json()

    assert me["roles"] == ["district_admin"]
    assert me["display_name"] == "改名居民"


def test_role_checks_apply_to_a_cached_login(client, resident):
    assert client.get(WALLET, headers=resident.headers).status_code == 200

    refused = client.get("/api/v1/review/actions", headers=resident.headers)

    assert refused.status_code == 403
    assert refused.get_json()["code"] == "forbidden"


def test_a_community_staff_login_keeps_its_communities_when_cached(client, staff, community):
    first = client.get("/api/v1/me", headers=staff.headers).get_json()
    with statements() as sent:
        second = client.get("/api/v1/me", headers=staff.headers).get_json()

    assert first["community_ids"] == second["community_ids"] == [community.id]
    assert sent == []


@pytest.mark.parametrize("raw, expected", [(None, 5), ("", 5), ("0", 0), ("30", 30)])
def test_auth_cache_seconds_reads_the_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("AUTH_CACHE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("AUTH_CACHE_SECONDS", raw)

    assert load_config()["AUTH_CACHE_SECONDS"] == expected


# ---------------------------------------------------------------- the cache itself


class Row:
    def __init__(self, id, household_id=None):
        self.id, self.household_id = id, household_id


def test_a_read_that_raced_with_a_revocation_is_not_kept():
    cache = LoginCache()
    started = cache.generation  # a request starts reading the login ...

    cache.forget(["s1"])  # ... another thread revokes it and commits ...
    cache.put("s1", Row("u1"), 5, started)  # ... and the read, begun before, comes back

    assert cache.get("s1", "u1") is None


def test_entries_expire_and_the_least_recently_used_goes_first():
    now = [0.0]
    cache = LoginCache(size=2, clock=lambda: now[0])
    for sid in ("s1", "s2"):
        cache.put(sid, Row(f"u{sid[1]}"), 5, cache.generation)
    cache.get("s1", "u1")

    cache.put("s3", Row("u3"), 5, cache.generation)

    assert cache.get("s2", "u2") is None
    assert cache.get("s1", "u1").id == "u1"
    assert cache.get("s1", "someone-else") is None  # a token whose subject does not match is read again
    now[0] = 5.0
    assert cache.get("s3", "u3") is None


def test_forgetting_a_household_drops_every_login_of_its_members():
    cache = LoginCache()
    for sid, user in (("s1", Row("u1", "h1")), ("s2", Row("u2", "h1")), ("s3", Row("u3", "h2"))):
        cache.put(sid, user, 5, cache.generation)

    cache.forget(household_ids={"h1"})

    assert [cache.get(s, u) is not None for s, u in (("s1", "u1"), ("s2", "u2"), ("s3", "u3"))] == \
        [False, False, True]


def test_the_cache_holds_under_threads():
    cache = LoginCache(size=50)
    errors = []

    def churn(n):
        try:
            for i in range(2000):
                sid = f"s{(n * 7 + i) % 80}"
                cache.put(sid, Row(f"u{sid}"), 5, cache.generation)
                cache.get(sid, f"u{sid}")
                if i % 97 == 0:
                    cache.forget(user_ids={f"u{sid}"})
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(cache) <= 50
