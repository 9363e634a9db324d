"""A signature covers the query string and is accepted once: a replay within the window is 401 and credits nothing."""
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.activities.models import Action
from app.columns import utcnow
from app.extensions import db
from app.replay import SeenSignature, prune_seen_signatures
from tests.integrations.conftest import ACTIONS_PATH, balance, card_of, push, record, signed_headers
from tests.integrations.test_routes import actions_of, assert_problem

STORES = ["configured", "database"]  # Redis when TEST_REDIS_URL is set, else the database; the database always


@pytest.fixture
def store(request, app, monkeypatch):
    if request.param == "database":
        monkeypatch.setitem(app.config, "REDIS_URL", None)
    return request.param


def seen(signature) -> bool:
    return db.session.get(SeenSignature, signature) is not None


@pytest.mark.parametrize("store", STORES, indirect=True)
def test_a_replayed_request_is_401_and_credits_nothing(app, client, device, resident, store):
    raw = json.dumps(record("trip-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)

    first = client.post(ACTIONS_PATH, data=raw, headers=headers)
    replay = client.post(ACTIONS_PATH, data=raw, headers=headers)

    assert first.get_json()["results"][0]["status"] == "created"
    body = assert_problem(replay, 401, "unauthenticated")
    assert body["detail"] == "This signed request was already received"
    assert len(actions_of(device.id)) == 1
    assert balance(client, resident) == 200
    if not app.config["REDIS_URL"]:
        assert seen(headers["X-Signature"])


def test_a_replay_in_upper_case_hex_is_the_same_signature(client, device, resident):
    raw = json.dumps(record("trip-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)

    client.post(ACTIONS_PATH, data=raw, headers=headers)
    replay = client.post(ACTIONS_PATH, data=raw, headers={**headers, "X-Signature": headers["X-Signature"].upper()})

    assert_problem(replay, 401, "unauthenticated")


def test_a_retry_signed_afresh_is_accepted_and_reports_the_duplicate(client, device, resident):
    body = record("trip-1", card_of(resident))
    stamp = int(time.time())  # read once: a first request slower than a second must not sign the retry alike
    push(client, device, body, timestamp=stamp)

    retry = push(client, device, body, timestamp=stamp - 1)

    assert retry.status_code == 200
    assert retry.get_json()["results"][0]["status"] == "duplicate"
    assert balance(client, resident) == 200


def test_a_request_refused_for_its_signature_is_not_remembered(client, device, resident):
    raw = json.dumps(record("trip-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)

    tampered = client.post(ACTIONS_PATH + "?batch=1", data=raw, headers=headers)
    genuine = client.post(ACTIONS_PATH, data=raw, headers=headers)

    assert_problem(tampered, 401, "unauthenticated")
    assert genuine.get_json()["results"][0]["status"] == "created"


def test_a_query_string_that_was_signed_is_accepted(client, device, resident):
    response = push(client, device, record("q-1", card_of(resident)), url=ACTIONS_PATH + "?batch=7&site=%E6%9D%BE")

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"][0]["status"] == "created"


def test_signatures_whose_window_has_closed_are_pruned(app, client, device, resident, monkeypatch):
    now = utcnow()
    db.session.add_all([SeenSignature(signature="a" * 64, expires_at=now - timedelta(seconds=1)),
                        SeenSignature(signature="b" * 64, expires_at=now + timedelta(seconds=60))])
    db.session.commit()
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    monkeypatch.setattr("app.replay.PRUNE_ONE_IN", 1)  # prune on this very request

    raw = json.dumps(record("p-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)
    client.post(ACTIONS_PATH, data=raw, headers=headers)

    assert not seen("a" * 64) and seen("b" * 64) and seen(headers["X-Signature"])
    assert prune_seen_signatures(now + timedelta(seconds=61)) == 1  # "b"; the request's own lasts ~300 s more
    assert seen(headers["X-Signature"])


# ---------------------------------------------------------------- concurrent replays


THREADS = 8


@pytest.mark.committing
@pytest.mark.parametrize("store", STORES, indirect=True)
def test_of_identical_concurrent_requests_exactly_one_passes(app, client, device, resident, store):
    raw = json.dumps(record("race-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)
    db.session.remove()  # end the main thread's read transaction: on SQLite it holds the write lock
    barrier = threading.Barrier(THREADS)
    statuses, failures = [], []

    def send():
        try:
            with app.app_context():
                thread_client = app.test_client()
                barrier.wait()
                statuses.append(thread_client.post(ACTIONS_PATH, data=raw, headers=headers).status_code)
        except Exception as exc:  # surfaced by the assertion below
            failures.append(repr(exc))

    threads = [threading.Thread(target=send) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(statuses) == [200] + [401] * (THREADS - 1)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Action).where(Action.integration_id == device.id)) == 1
    assert balance(client, resident) == 200


@pytest.mark.skipif("not __import__('tests.conftest').conftest.REDIS_URL", reason="needs Redis (the PostgreSQL run)")
@pytest.mark.parametrize("redis_fails_for", ["the first request", "the replay"])
def test_a_replay_is_refused_when_redis_answered_for_only_one_of_the_two(app, client, device, resident, monkeypatch,
                                                                        redis_fails_for):
    import app.replay as replay

    class Down:
        def set(self, *args, **kwargs):
            raise ConnectionError("Redis is down")

    raw = json.dumps(record("trip-1", card_of(resident))).encode()
    headers = signed_headers(device, raw)
    working = replay._redis

    monkeypatch.setattr(replay, "_redis", (lambda: Down()) if redis_fails_for == "the first request" else working)
    first = client.post(ACTIONS_PATH, data=raw, headers=headers)
    monkeypatch.setattr(replay, "_redis", working if redis_fails_for == "the first request" else (lambda: Down()))
    again = client.post(ACTIONS_PATH, data=raw, headers=headers)

    assert first.get_json()["results"][0]["status"] == "created"
    assert_problem(again, 401, "unauthenticated")
    assert len(actions_of(device.id)) == 1
