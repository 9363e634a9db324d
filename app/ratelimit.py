"""Rate-limit counters in the application's database, shared by every worker process.

Without `REDIS_URL` the limiter counts here (`RATELIMIT_STORAGE_URI =
"sjc+database://"`), so a limit of 10 is 10 however many gunicorn workers
serve the API; with Redis it counts in Redis. Fixed windows only: one row per
key, its hits and the end of its window. Each hit is one statement of its own,
committed at once on a connection of its own, outside the request's
transaction (a refused request still counts).

On PostgreSQL the table is in the app's database. SQLite locks a whole file,
and a request whose transaction already holds the write lock when its limit
is checked (a limit keyed on the caller loads the caller first) would wait on
itself; so on SQLite the counters live in a file of their own beside the
database, `<database file>-limits`, created on first use and shared by every
process on the host as the database is.
"""
import hashlib
import time

from limits.storage import Storage
from flask import current_app
from sqlalchemy import BigInteger, Integer, String, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import begin_sqlite_transactions, db

SCHEME = "sjc+database"
KEY_LENGTH = 200
PRUNE_EVERY = 1000  # hits between deletions of windows that have ended


class RateLimitCounter(db.Model):
    """One fixed window of one limit key; `window_ends_ms` is Unix milliseconds."""

    __tablename__ = "rate_limit_counters"
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    window_ends_ms: Mapped[int] = mapped_column(BigInteger, index=True)


_INCR = text(
    "INSERT INTO rate_limit_counters (key, hits, window_ends_ms) VALUES (:key, :amount, :ends) "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN rate_limit_counters.window_ends_ms <= :now THEN :amount "
    "ELSE rate_limit_counters.hits + :amount END, "
    "window_ends_ms = CASE WHEN rate_limit_counters.window_ends_ms <= :now THEN :ends "
    "ELSE rate_limit_counters.window_ends_ms END "
    "RETURNING hits"
)


_SQLITE_ENGINES: dict[str, Engine] = {}


def counter_engine() -> Engine:
    """Where the counters of the current app live (see the module's docstring)."""
    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("sqlite:///"):
        return db.engine
    engine = _SQLITE_ENGINES.get(url)
    if engine is None:
        path, _, query = url[len("sqlite:///"):].partition("?")
        engine = create_engine(f"sqlite:///{path}-limits" + (f"?{query}" if query else ""),
                               connect_args={"timeout": 30, "check_same_thread": False})
        begin_sqlite_transactions(engine)
        with engine.begin() as conn:
            RateLimitCounter.__table__.create(conn, checkfirst=True)
        _SQLITE_ENGINES[url] = engine
    return engine


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _stored_key(key: str) -> str:
    if len(key) <= KEY_LENGTH:
        return key
    return key[:KEY_LENGTH - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


class DatabaseStorage(Storage):
    """A `limits` storage over the app's database (`sjc+database://`); needs an app context."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._hits = 0

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = _now_ms()
        with counter_engine().connect() as conn:
            hits = conn.execute(_INCR, {"key": _stored_key(key), "amount": amount, "now": now,
                                        "ends": now + int(expiry * 1000)}).scalar_one()
            self._hits += 1
            if self._hits % PRUNE_EVERY == 0:
                conn.execute(text("DELETE FROM rate_limit_counters WHERE window_ends_ms <= :now"), {"now": now})
            conn.commit()
        return hits

    def get(self, key: str) -> int:
        with counter_engine().connect() as conn:
            hits = conn.execute(
                text("SELECT hits FROM rate_limit_counters WHERE key = :key AND window_ends_ms > :now"),
                {"key": _stored_key(key), "now": _now_ms()},
            ).scalar()
        return hits or 0

    def get_expiry(self, key: str) -> float:
        with counter_engine().connect() as conn:
            ends = conn.execute(text("SELECT window_ends_ms FROM rate_limit_counters WHERE key = :key"),
                                {"key": _stored_key(key)}).scalar()
        return ends / 1000 if ends and ends > _now_ms() else time.time()

    def check(self) -> bool:
        try:
            with counter_engine().connect() as conn:
                conn.execute(text("SELECT 1 FROM rate_limit_counters WHERE 1 = 0"))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with counter_engine().connect() as conn:
            deleted = conn.execute(text("DELETE FROM rate_limit_counters")).rowcount
            conn.commit()
        return deleted

    def clear(self, key: str) -> None:
        with counter_engine().connect() as conn:
            conn.execute(text("DELETE FROM rate_limit_counters WHERE key = :key"), {"key": _stored_key(key)})
            conn.commit()
