"""Builders for the people and places most tests need, and `race` for requests sent at once."""
import itertools
import threading

import pytest

from app.accounts import service as accounts
from app.accounts.models import Community, Street
from app.extensions import db

_phones = itertools.count(13_000_000_000 + 100_000)
PASSWORD = "correct-horse-9"


def next_phone() -> str:
    return str(next(_phones))


def bearer(tokens_or_token) -> dict:
    token = tokens_or_token["access_token"] if isinstance(tokens_or_token, dict) else tokens_or_token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def street():
    found = db.session.query(Street).filter_by(name="测试街道").one_or_none()
    if found:
        return found
    s = Street(name="测试街道", code="310117999", kind="street", position=99)
    db.session.add(s)
    db.session.commit()
    return s


@pytest.fixture
def make_community(street):
    counter = itertools.count(1)

    def make(name=None) -> Community:
        community = Community(street_id=street.id, name=name or f"测试社区{next(counter)}-{next_phone()[-4:]}",
                              position=next(counter) + 1000)
        db.session.add(community)
        db.session.commit()
        return community

    return make


@pytest.fixture
def community(make_community):
    return make_community()


class Person:
    """A registered user with a live access token."""

    def __init__(self, user, tokens):
        self.user, self.tokens = user, tokens
        self.id = user.id
        self.headers = bearer(tokens)

    @property
    def household_id(self):
        return self.user.household_id


@pytest.fixture
def make_resident(community):
    def make(*, community_id=None, invite_code=None, phone=None) -> Person:
        data = {"phone": phone or next_phone(), "password": PASSWORD, "display_name": "测试居民"}
        if invite_code:
            data["household_invite_code"] = invite_code
        else:
            data["community_id"] = community_id or community.id
        user, tokens = accounts.register(data)
        db.session.commit()
        return Person(user, tokens)

    return make


@pytest.fixture
def resident(make_resident):
    return make_resident()


@pytest.fixture
def make_staff(community):
    def make(role="community_staff", **scope) -> Person:
        if role == "community_staff":
            scope.setdefault("community_ids", [community.id])
        user = accounts.create_staff({"phone": next_phone(), "password": PASSWORD, "display_name": "测试员工",
                                      "role": role, **scope})
        tokens = accounts.start_session(user)
        db.session.commit()
        return Person(user, tokens)

    return make


@pytest.fixture
def admin(make_staff):
    return make_staff("district_admin")


@pytest.fixture
def staff(make_staff):
    return make_staff("community_staff")


@pytest.fixture
def factor_set():
    """The project's factors.csv (SJ-2026.1, from 2026-01-01), published."""
    from app.activities import factors

    published = factors.load_project_factors()
    db.session.commit()
    return published


def race(app, requests) -> list[tuple[int, dict | None]]:
    """Send each (path, json, headers) POST from its own thread, all released at once; (status, body) each.

    The caller's session is rolled back first: it holds no transaction (on SQLite: no write lock)
    while the threads run.
    """
    barrier = threading.Barrier(len(requests))
    replies = [None] * len(requests)
    db.session.rollback()

    def send(index, path, body, headers):
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            reply = client.post(path, json=body, headers=headers)
            replies[index] = (reply.status_code, reply.get_json())
            db.session.remove()

    threads = [threading.Thread(target=send, args=(i, *request)) for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request of the race never returned"
    return replies
