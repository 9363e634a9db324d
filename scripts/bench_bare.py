"""The baseline the benchmark compares against: bare Flask + psycopg doing one INSERT per request.

Run by scripts/bench.py under gunicorn: `gunicorn scripts.bench_bare:app`. BENCH_BARE_DSN names the
database, in which bench.py has made the table `bare_writes`.
"""
import json
import os
import secrets

import psycopg
from flask import Flask, request
from psycopg_pool import ConnectionPool

DSN = os.environ.get("BENCH_BARE_DSN", "postgresql://postgres@127.0.0.1:5432/songjiang_bench")
# The table is made by scripts/bench.py before the workers start: four workers creating it at
# once can collide in the catalog and stop gunicorn.
pool = ConnectionPool(DSN, min_size=1, max_size=4, open=True)

app = Flask(__name__)


@app.post("/bare/write")
def write():
    body = request.get_json()
    row_id = secrets.token_hex(16)
    with pool.connection() as conn:
        conn.execute("INSERT INTO bare_writes (id, household, body) VALUES (%s, %s, %s)",
                     (row_id, request.headers.get("Authorization", "")[-16:], json.dumps(body)))
    return {"id": row_id}, 201
