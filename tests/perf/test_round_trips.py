"""How many statements the hot paths send to the database, per request, with real commits.

Each statement is a round trip (≈ 0.65 ms on the benchmark machine); these budgets keep the
hot paths at the handful the performance work brought them to. The statements are listed on
failure, so a regression shows what it added. SQLite's explicit `BEGIN IMMEDIATE` is left out
of the count: PostgreSQL's driver opens its transaction with the first statement.
"""
from datetime import datetime, timezone

import pytest
from sqlalchemy import event

from app.extensions import db

pytestmark = pytest.mark.committing
API = "/api/v1"


class Statements:
    def __init__(self):
        self.seen: list[str] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if statement.strip().upper() != "BEGIN IMMEDIATE":
            self.seen.append(" ".join(statement.split())[:160])

    def __len__(self):
        return len(self.seen)

    def __str__(self):
        return f"{len(self.seen)} statements:\n" + "\n".join(self.seen)


def _count(client, method, path, **kwargs):
    db.session.remove()
    with Statements() as seen:
        reply = client.open(path, method=method, **kwargs)
    assert reply.status_code < 300, reply.get_json()
    return reply, seen


def _now():
    return datetime.now(timezone.utc).isoformat()


def test_self_approved_credit(client, factor_set, resident):
    walk = {"action_type": "walking", "quantity": "0.5", "unit": "km", "occurred_at": _now()}
    _count(client, "POST", f"{API}/actions", json=walk, headers=resident.headers)  # accounts and cap rows exist now

    reply, seen = _count(client, "POST", f"{API}/actions", json=walk, headers=resident.headers)

    assert reply.get_json()["points"] > 0
    # wallet + issuance shard locked (one statement); cap usage added (one upsert); the approved
    # action; both balances, both entries and the point lot (one statement on PostgreSQL); active
    # campaigns; the two rollup upserts (one statement on PostgreSQL). The caller comes from the login
    # cache (app/auth.py), the set in force from the process's (app/activities/factors.py).
    assert len(seen) == (6 if db.engine.dialect.name == "postgresql" else 9), str(seen)
    assert sum(s.startswith("INSERT INTO ledger_accounts") for s in seen.seen) == 1, str(seen)


def test_pending_report(client, factor_set, resident):
    report = {"action_type": "recycling", "variant": "paper", "quantity": "1.5", "unit": "kg", "occurred_at": _now()}
    _count(client, "POST", f"{API}/actions", json=report, headers=resident.headers)  # this process knows the set now

    reply, seen = _count(client, "POST", f"{API}/actions", json=report, headers=resident.headers)

    assert reply.get_json()["status"] == "pending"
    # the action (the caller: the login cache; the set in force: the process knows it).
    assert len(seen) == 1, str(seen)


def test_redemption(client, resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    first, second = get_code(resident, reward), get_code(resident, reward)
    _count(client, "POST", f"{API}/merchant/redemptions", json={"code": first["code"]}, headers=clerk.headers)

    reply, seen = _count(client, "POST", f"{API}/merchant/redemptions", json={"code": second["code"]},
                         headers=clerk.headers)

    assert reply.status_code == 201
    # the code claimed and (one statement on PostgreSQL) the reward with its merchant; wallet + till
    # locked (one statement); the stock taken where the limits allow, returning the anomaly count (one
    # statement); both balances, both entries and the lots read, spent and recorded (one statement on
    # PostgreSQL); the redemption (the caller: the login cache). No savepoint.
    assert len(seen) == (5 if db.engine.dialect.name == "postgresql" else 10), str(seen)
    assert not any(s.startswith(("SAVEPOINT", "RELEASE")) for s in seen.seen), str(seen)


def test_wallet_read(client, resident, fund):
    fund(resident.household_id, 100)

    reply, seen = _count(client, "GET", f"{API}/wallet", headers=resident.headers)

    assert reply.get_json()["balance"] == 100 and reply.get_json()["lifetime_earned"] == 100
    # the caller (the first request of this login: the login cache is cold); then one statement: the
    # wallet with its lifetime totals, the points expiring soon, the reduction totals. The wallet's
    # history is not summed.
    assert len(seen) == 2, str(seen)
    assert not any("ledger_entries" in s for s in seen.seen), str(seen)
