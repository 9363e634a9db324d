"""The ceiling the benchmark compares against: bare Flask + psycopg, a JWT verified, one write per request.

Run by scripts/bench.py under gunicorn: `gunicorn scripts.bench_bare:app`. BENCH_BARE_DSN names the
database, in which bench.py has made the tables `bare_writes` and `bare_wallets`. The token is the
app's own access token, verified with the same key and algorithm (HS256), without a database read.
"""
import json
import os
import secrets

import jwt
from flask import Flask, request
from psycopg_pool import ConnectionPool

from app.config import DEV_JWT_SECRET

DSN = os.environ.get("BENCH_BARE_DSN", "postgresql://postgres@127.0.0.1:5432/songjiang_bench")
# The table is made by scripts/bench.py before the workers start: four workers creating it at
# once can collide in the catalog and stop gunicorn.
pool = ConnectionPool(DSN, min_size=1, max_size=4, open=True)

app = Flask(__name__)


def _caller() -> str:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return jwt.decode(token, os.environ.get("JWT_SECRET_KEY") or DEV_JWT_SECRET, algorithms=["HS256"])["sub"]


@app.post("/bare/write")
def write():
    """The ceiling of action logging: one INSERT."""
    caller, body = _caller(), request.get_json()
    row_id = secrets.token_hex(16)
    with pool.connection() as conn:
        conn.execute("INSERT INTO bare_writes (id, household, body) VALUES (%s, %s, %s)",
                     (row_id, caller, json.dumps(body)))
    return {"id": row_id}, 201


@app.post("/bare/redeem")
def redeem():
    """The ceiling of redemption: a guarded UPDATE of a balance and one ledger-like INSERT."""
    caller, body = _caller(), request.get_json()
    row_id = secrets.token_hex(16)
    with pool.connection() as conn:
        taken = conn.execute("UPDATE bare_wallets SET points = points - 10 WHERE owner = %s AND points >= 10",
                             (body.get("household", caller),)).rowcount
        if not taken:
            return {"code": "insufficient_points"}, 409
        conn.execute("INSERT INTO bare_writes (id, household, body) VALUES (%s, %s, %s)",
                     (row_id, caller, json.dumps(body)))
    return {"id": row_id}, 201


@app.get("/bare/read")
def read():
    """The ceiling of a wallet read: one SELECT by key."""
    caller = _caller()
    with pool.connection() as conn:
        row = conn.execute("SELECT points FROM bare_wallets WHERE owner = %s", (caller,)).fetchone()
    return {"balance": row[0] if row else 0}
