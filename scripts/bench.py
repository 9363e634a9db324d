"""Throughput and latency of action logging and redemption against a bare Flask + psycopg write.

    .venv/bin/python scripts/bench.py [--clients 32] [--requests 3000] [--workers 4]

Builds a fresh PostgreSQL database (songjiang_bench), starts the app and the bare baseline
(scripts/bench_bare.py) under gunicorn with the same worker count, and drives both from the same
load generator in this run: POST /actions (one pending action — one INSERT), POST
/merchant/redemptions (claim code, stock, ledger transfer) and the bare single INSERT. Prints
requests per second, p50/p99 latency, the ratios to the baseline, and any non-2xx replies.
"""
import argparse
import shutil
import tempfile
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_BASE = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DB = f"{PG_BASE}/songjiang_bench"
APP_PORT, BARE_PORT = 8701, 8702


def sh(*args, env=None):
    subprocess.run(args, check=True, cwd=ROOT, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def fresh_database():
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS songjiang_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE songjiang_bench")
    with psycopg.connect(DB, autocommit=True) as conn:
        conn.execute("CREATE TABLE bare_writes (id text PRIMARY KEY, household text, body text,"
                     " created_at timestamptz DEFAULT now())")


def server_env():
    return {
        "DATABASE_URL": DB, "RATELIMIT_ENABLED": "false", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "REDEMPTION_CODE_TTL_SECONDS": "3600", "LOG_LEVEL": "WARNING", "REDIS_URL": "",
        "BENCH_BARE_DSN": DB, "APP_ENV": "development",  # a throwaway database: built-in secrets will do
    }


def start(app_spec: str, port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", app_spec],
        cwd=ROOT, env={**os.environ, **server_env()},
    )
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            c.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app_spec} did not start")


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    reply = conn.getresponse()
    raw = reply.read()
    conn.close()
    return reply.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw)


def prepare(households: int, codes_per_household: int):
    """Demo data, residents with points, merchants with rewards, and live redemption codes."""
    os.environ.update(server_env())
    sys.path.insert(0, str(ROOT))
    from app import create_app
    from app.extensions import db
    from app.ledger import service as ledger

    app = create_app()
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    sh(str(ROOT / ".venv/bin/flask"), "--app", "app", "seed-demo", env=server_env())
    login = lambda phone: call(APP_PORT, "POST", "/api/v1/auth/login",
                               {"phone": phone, "password": "demo-pass-2026"})[1]["access_token"]
    admin = {"Authorization": f"Bearer {login('13800000000')}"}
    communities = call(APP_PORT, "GET", "/api/v1/communities")[1]["items"]
    community = next(c for c in communities if "演示" in c["name"])
    merchants = []
    for m in range(8):
        status, merchant = call(APP_PORT, "POST", "/api/v1/merchants",
                                {"name": f"Bench shop {m}", "community_id": community["id"]}, admin)
        assert status == 201, merchant
        phone = f"1370000{m:04d}"
        status, staff = call(APP_PORT, "POST", "/api/v1/admin/staff",
                             {"phone": phone, "password": "demo-pass-2026", "display_name": f"shop {m}",
                              "role": "merchant_staff", "merchant_id": merchant["id"]}, admin)
        assert status == 201, staff
        status, reward = call(APP_PORT, "POST", f"/api/v1/merchants/{merchant['id']}/rewards",
                              {"name": "Tote bag", "points_cost": 10, "stock": 1_000_000},
                              {"Authorization": f"Bearer {login(phone)}"})
        assert status == 201, reward
        merchants.append(({"Authorization": f"Bearer {login(phone)}"}, reward["id"]))
    residents = []
    for h in range(households):
        status, reply = call(APP_PORT, "POST", "/api/v1/auth/register",
                             {"phone": f"1360{h:07d}", "password": "bench-pass-1", "display_name": f"h{h}",
                              "community_id": community["id"]})
        assert status == 201, reply
        residents.append(({"Authorization": f"Bearer {reply['access_token']}"}, reply["household"]["id"]))
    with app.app_context():
        for _, household_id in residents:
            ledger.award(household_id, 10_000, kind="adjustment", ref_type="bench", ref_id="seed")
        db.session.commit()
    codes = []
    for index, (headers, _) in enumerate(residents):
        for k in range(codes_per_household):
            merchant_headers, reward_id = merchants[(index + k) % len(merchants)]
            status, code = call(APP_PORT, "POST", "/api/v1/redemption-codes", {"reward_id": reward_id}, headers)
            assert status == 201, code
            codes.append((merchant_headers, code["code"]))
    return residents, codes


def load(port, requests, clients):
    """Run `requests` (method, path, body, headers) tuples over `clients` threads; time each."""
    latencies, failures, lock = [], {}, threading.Lock()
    it = iter(requests)

    def worker():
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            method, path, body, headers = item
            t0 = time.perf_counter()
            status, reply = call(port, method, path, body, headers)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if status >= 300:
                    failures[status] = failures.get(status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "failures": failures,
        "n": len(latencies),
    }


WRK_SCRIPT = """
local items = {}
local counter = 0
local tid = 0
local nthreads = %(threads)d
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
init = function(args)
  for line in io.lines("%(path)s") do
    local auth, body = line:match("^(.-)\t(.*)$")
    items[#items + 1] = {auth, body}
  end
end
request = function()
  local i = (counter * nthreads + tid) %% #items + 1
  counter = counter + 1
  local item = items[i]
  return wrk.format("POST", "%(url_path)s", {["Content-Type"] = "application/json",
                    ["Authorization"] = item[1]}, item[2])
end
"""


def run_wrk(port, url_path, items, clients, seconds, workdir):
    """Drive one endpoint with wrk (C, light on the CPU); items are (headers, body) cycled per request."""
    import re
    import tempfile

    data = Path(workdir) / f"items-{port}-{abs(hash(url_path))}.tsv"
    data.write_text("\n".join(f"{h['Authorization']}\t{json.dumps(b)}" for h, b in items), encoding="utf-8")
    script = Path(workdir) / f"drive-{port}-{abs(hash(url_path))}.lua"
    script.write_text(WRK_SCRIPT % {"threads": 2, "path": data, "url_path": url_path})
    done = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script),
                           f"http://127.0.0.1:{port}"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    out = done.stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "failures": {"non-2xx": int(non2xx.group(1))} if non2xx else {},
            "n": int(re.search(r"(\d+) requests in", out).group(1))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    fresh_database()
    households = max(1, args.requests // 10)
    app_proc = start("app:create_app()", APP_PORT, args.workers)
    bare_proc = None
    try:
        residents, codes = prepare(households, 10)
        bare_proc = start("scripts.bench_bare:app", BARE_PORT, args.workers)
        now = datetime.now(timezone.utc).isoformat()
        action = {"action_type": "recycling", "variant": "paper", "quantity": "1.5", "unit": "kg",
                  "occurred_at": now}
        action_reqs = [("POST", "/api/v1/actions", action, residents[i % len(residents)][0])
                       for i in range(args.requests)]
        redeem_reqs = [("POST", "/api/v1/merchant/redemptions", {"code": code}, headers)
                       for headers, code in codes[: args.requests]]
        bare_reqs = [("POST", "/bare/write", action, residents[i % len(residents)][0])
                     for i in range(args.requests)]
        if use_wrk:
            workdir = tempfile.mkdtemp(prefix="sjc-bench-")
            drive = lambda port, reqs: run_wrk(port, reqs[0][1], [(r[3], r[2]) for r in reqs], args.clients,
                                               args.seconds, workdir)
            drive(BARE_PORT, bare_reqs[:500])  # warm-up
            results = {
                "bare insert": drive(BARE_PORT, bare_reqs),
                "POST /actions": drive(APP_PORT, action_reqs),
                "POST /merchant/redemptions": drive(APP_PORT, redeem_reqs),
            }
        else:
            load(BARE_PORT, bare_reqs[:300], args.clients)  # warm-up
            load(APP_PORT, action_reqs[:300], args.clients)
            results = {
                "bare insert": load(BARE_PORT, bare_reqs, args.clients),
                "POST /actions": load(APP_PORT, action_reqs, args.clients),
                "POST /merchant/redemptions": load(APP_PORT, redeem_reqs, args.clients),
            }
    finally:
        for proc in (app_proc, bare_proc):
            if proc:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
    base = results["bare insert"]["rps"]
    driver = f"wrk, {args.seconds} s per run" if use_wrk else f"Python threads, {args.requests} requests per run"
    print(f"{args.clients} clients, {args.workers} gunicorn workers each, PostgreSQL, {driver}")
    print(f"{'endpoint':28} {'req/s':>8} {'% of bare':>9} {'p50 ms':>7} {'p99 ms':>7}  non-2xx")
    for name, r in results.items():
        print(f"{name:28} {r['rps']:8.0f} {100 * r['rps'] / base:8.0f}% {r['p50_ms']:7.1f} {r['p99_ms']:7.1f}  "
              f"{r['failures'] or 'none'}")


if __name__ == "__main__":
    main()
