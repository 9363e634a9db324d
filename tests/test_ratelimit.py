"""The database storage of rate-limit counters (the default without Redis): one fixed window per key."""
import pytest
from sqlalchemy import text

from app.ratelimit import KEY_LENGTH, DatabaseStorage, counter_engine

pytestmark = pytest.mark.committing  # the storage commits on its own connection


@pytest.fixture(autouse=True)
def _no_counters():
    DatabaseStorage().reset()


def test_hits_count_up_within_a_window_and_start_over_after_it():
    storage = DatabaseStorage()

    assert [storage.incr("LIMITS:login:phone:1", 900) for _ in range(3)] == [1, 2, 3]
    assert storage.get("LIMITS:login:phone:1") == 3
    with counter_engine().begin() as conn:  # the window ends
        conn.execute(text("UPDATE rate_limit_counters SET window_ends_ms = 0"))

    assert storage.get("LIMITS:login:phone:1") == 0
    assert storage.incr("LIMITS:login:phone:1", 900) == 1


def test_keys_count_apart_and_clear_one_by_one():
    storage = DatabaseStorage()
    storage.incr("a", 60, amount=4)
    storage.incr("b", 60)

    storage.clear("a")

    assert (storage.get("a"), storage.get("b")) == (0, 1)
    assert storage.get_expiry("b") > storage.get_expiry("a")


def test_a_key_longer_than_the_column_still_counts_on_its_own():
    storage = DatabaseStorage()
    long_a, long_b = "x" * 500 + "a", "x" * 500 + "b"

    storage.incr(long_a, 60)
    storage.incr(long_a, 60)
    storage.incr(long_b, 60)

    assert (storage.get(long_a), storage.get(long_b)) == (2, 1)
    with counter_engine().connect() as conn:
        assert max(len(k) for k in conn.execute(text("SELECT key FROM rate_limit_counters")).scalars()) <= KEY_LENGTH


def test_reset_empties_every_counter():
    storage = DatabaseStorage()
    storage.incr("a", 60)

    assert storage.reset() == 1
    assert storage.get("a") == 0 and storage.check()


def test_a_request_that_holds_the_database_write_lock_can_still_count(app):
    """SQLite locks a file: the counters must not wait on the request's own transaction."""
    from app.extensions import db

    storage = DatabaseStorage()
    with db.engine.connect() as request_connection:
        request_connection.execute(text("UPDATE rate_limit_counters SET hits = hits WHERE 1 = 0"))  # holds the lock

        assert storage.incr("while-locked", 60) == 1
