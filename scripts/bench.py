"""Throughput and latency of the hot paths against a bare Flask + psycopg ceiling, in one run.

    .venv/bin/python scripts/bench.py [--workers 2] [--clients 16] [--seconds 10] [--rounds 3]

Builds a fresh PostgreSQL database (songjiang_bench), starts the app and the ceiling
(scripts/bench_bare.py: the same JWT verified, then one write) under gunicorn with the same worker
count, and drives both with wrk (Debian's `wrk`; Python threads without it) in this run, rows in turn:
a pending report (POST /actions, recycling by weight: one INSERT), a self-approved credit (POST
/actions, walking: valuation, caps, ledger transfer), redemption at many merchants and at one, a wallet
read, and device ingestion (signed batches of 500 records; two batches at a time, naming the same
households or separate ones, of paper, which the demo campaign counts, or of PET bottles, which no
campaign counts). Prints req/s, p50/p99 latency, non-2xx
replies and the ratio to its ceiling (a single INSERT; for redemption a guarded UPDATE + INSERT; for the
wallet a SELECT by key). Ingestion is also given in actions per second.

Each row runs `--rounds` times, ceiling and app in turn, and prints the median round (the ratio is
taken within each round, so a machine that slows down for a while slows both sides of it). Every
redemption round scans codes of its own, enough for --redemption-rate scans a second, and the walkers
are enough for every round to stay under walking's daily cap; a run that used up its requests and
started over is marked with `*`.
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
        conn.execute("CREATE TABLE bare_wallets (owner text PRIMARY KEY, points bigint NOT NULL)")


def server_env():
    return {
        "DATABASE_URL": DB, "RATELIMIT_ENABLED": "false", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "REDEMPTION_CODE_TTL_SECONDS": "3600", "REDEMPTION_CODES_LIVE_MAX": "1000", "LOG_LEVEL": "WARNING",
        "REDIS_URL": "", "JWT_ACCESS_TTL_SECONDS": "86400",  # a slow setup on a busy machine must not outlive its tokens
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
    data = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    reply = conn.getresponse()
    raw = reply.read()
    conn.close()
    return reply.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw)


def prepare(households: int, codes_per_household: int, walkers: int):
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
    residents, cards = [], []  # cards: every household's, for device batches over separate households
    for h in range(households):
        status, reply = call(APP_PORT, "POST", "/api/v1/auth/register",
                             {"phone": f"1360{h:07d}", "password": "bench-pass-1", "display_name": f"h{h}",
                              "community_id": community["id"]})
        assert status == 201, reply
        residents.append(({"Authorization": f"Bearer {reply['access_token']}"}, reply["household"]["id"]))
        cards.append(reply["household"]["card_number"])
    walking = []
    for h in range(walkers):
        status, reply = call(APP_PORT, "POST", "/api/v1/auth/register",
                             {"phone": f"1350{h:07d}", "password": "bench-pass-1", "display_name": f"w{h}",
                              "community_id": community["id"]})
        assert status == 201, reply
        walking.append(({"Authorization": f"Bearer {reply['access_token']}"}, reply["household"]["card_number"]))
        cards.append(reply["household"]["card_number"])
    with app.app_context():
        for _, household_id in residents:
            ledger.award(household_id, 10_000, kind="adjustment", ref_type="bench", ref_id="seed")
        db.session.commit()
    # Minted over HTTP by a few threads at once (both workers serve them), kept in order: every
    # household's codes at the 8 merchants in turn, then as many at merchant 0 alone.
    many = [(headers, merchants[(index + k) % len(merchants)])
            for index, (headers, _) in enumerate(residents) for k in range(codes_per_household)]
    one = [(headers, merchants[0]) for headers, _ in residents for _ in range(codes_per_household)]

    def mint(item):
        headers, (merchant_headers, reward_id) = item
        status, code = call(APP_PORT, "POST", "/api/v1/redemption-codes", {"reward_id": reward_id}, headers)
        assert status == 201, code
        return merchant_headers, code["code"]

    with ThreadPoolExecutor(8) as pool:
        codes, one_merchant = list(pool.map(mint, many)), list(pool.map(mint, one))
    status, device = call(APP_PORT, "POST", "/api/v1/integrations", {"name": "bench meters", "kind": "device"}, admin)
    assert status == 201, device
    import psycopg

    with psycopg.connect(DB, autocommit=True) as conn:  # the ceiling's wallets, one per resident
        for headers, _ in residents + walking:
            conn.execute("INSERT INTO bare_wallets (owner, points) VALUES (%s, 100000) ON CONFLICT DO NOTHING",
                         (_subject(headers),))
    return residents, codes, one_merchant, walking, cards, device


def _chosen(only: str, name: str) -> bool:
    """Whether a row's name contains any of the comma-separated words of --only."""
    return any(word.strip() and word.strip() in name for word in only.split(","))


def _subject(headers) -> str:
    import jwt

    return jwt.decode(headers["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})["sub"]


def signed_batches(device: dict, cards: list[str], batches: int, size: int, *, label: str,
                   apart: bool = False, variant: str = "paper") -> list[tuple]:
    """Batches of device records, each signed now (a signature is accepted once: one item per request).

    By default batch b names the next `size` cards, so batches sent together share households and wait
    for each other's wallet locks (the worst case). `apart`: even and odd batches name households of
    two disjoint halves of `cards` (at least 2 x `size`), as stations serving different households do.
    Records are recycling of `variant`, 1 kg: paper is what the demo campaign counts (every such batch
    pays parts from its one budget account, so batches of paper wait for each other on it); pet is not.
    """
    from app.auth import sign_request

    path = "/api/v1/integrations/actions"
    now = datetime.now(timezone.utc).isoformat()
    half = len(cards) // 2
    if apart and half < size:
        raise SystemExit(f"--households too small for separate batches: {len(cards)} cards, {2 * size} needed")
    items = []
    for b in range(batches):
        names = ([cards[(b % 2) * half + r] for r in range(size)] if apart
                 else [cards[(b * size + r) % len(cards)] for r in range(size)])
        records = [{"external_id": f"bench-{label}-{b}-{r}", "household_card": card,
                    "action_type": "recycling", "variant": variant, "quantity": "1", "unit": "kg",
                    "occurred_at": now} for r, card in enumerate(names)]
        body = json.dumps({"records": records})
        stamp = str(int(time.time()))
        headers = {"X-Integration-Id": device["id"], "X-Timestamp": stamp,
                   "X-Signature": sign_request(device["secret"], stamp, "POST", path, body.encode())}
        items.append(("POST", path, body, headers))
    return items


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
tid = 0  -- a global: thread:set() gives each thread its own (a local would shadow it)
local nthreads = %(threads)d
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
init = function(args)
  for line in io.lines("%(path)s") do
    local method, url, raw_headers, body = line:match("^(.-)\t(.-)\t(.-)\t(.*)$")
    local headers = {["Content-Type"] = "application/json"}
    for name, value in raw_headers:gmatch("([^\\31]+)\\30([^\\31]*)") do headers[name] = value end
    items[#items + 1] = {method, url, headers, body ~= "" and body or nil}
  end
end
request = function()
  local i = (counter * nthreads + tid) %% #items + 1
  counter = counter + 1
  local item = items[i]
  return wrk.format(item[1], item[2], item[3], item[4])
end
response = function(status, headers, body)
  if status >= 300 then io.stderr:write(status .. "\\t" .. string.sub(body or "", 1, 200):gsub("[\\r\\n]", " ") .. "\\n") end
end
"""


def run_wrk(port, items, clients, seconds, workdir, label):
    """Drive one row with wrk (C, light on the CPU); items are (method, path, body, headers), cycled."""
    import re

    def line(method, path, body, headers):
        raw = "\x1f".join(f"{k}\x1e{v}" for k, v in (headers or {}).items())
        text = body if isinstance(body, str) else (json.dumps(body) if body is not None else "")
        return f"{method}\t{path}\t{raw}\t{text}"

    data = Path(workdir) / f"items-{label}.tsv"
    data.write_text("\n".join(line(*item) for item in items), encoding="utf-8")
    script = Path(workdir) / f"drive-{label}.lua"
    script.write_text(WRK_SCRIPT % {"threads": 2, "path": data})
    done = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "60s", "--latency",
                           "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    out = done.stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    failures, samples = {}, {}
    for failed in done.stderr.splitlines():  # the script's response hook: status, then the start of the body
        status, _, body = failed.partition("\t")
        if not status.isdigit():  # the script itself failed: wrk would have sent its default request
            raise RuntimeError(f"wrk script failed: {failed}")
        failures[int(status)] = failures.get(int(status), 0) + 1
        samples.setdefault(int(status), body)
    for status, body in samples.items():
        print(f"  {label}: {failures[status]} x {status}, e.g. {body}", file=sys.stderr)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "failures": failures,
            "n": int(re.search(r"(\d+) requests in", out).group(1))}


def _median_round(rounds: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """The round whose ratio is the median (non-2xx summed over all rounds); the ceiling carries every ratio."""
    ordered = sorted(rounds, key=lambda pair: pair[1]["rps"] / pair[0]["rps"])
    bare, app = ordered[len(ordered) // 2]
    failures: dict[int, int] = {}
    for _, each in rounds:
        for status, count in each["failures"].items():
            failures[status] = failures.get(status, 0) + count
    ratios = [each_app["rps"] / each_bare["rps"] for each_bare, each_app in rounds]
    return ({**bare, "ratios": ratios},
            {**app, "failures": failures, "cycled": any(a.get("cycled") for _, a in rounds)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--households", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3000, help="requests per row without wrk")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each row, ceiling and app in turn")
    parser.add_argument("--redemption-rate", type=int, default=800,
                        help="redemptions a second each redemption row's codes last for (beyond it they repeat: *)")
    parser.add_argument("--only", help="run only the rows whose name contains this, or any of several words separated by commas "
                        "(e.g. credit, ingestion, 'credit,redemption')")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    fresh_database()
    app_proc = start("app:create_app()", APP_PORT, args.workers)
    bare_proc = None
    try:
        walkers = max(args.households * args.rounds, 1000 - args.households)  # 1,000 cards in all at least
        # Enough fresh codes for every redemption round at --redemption-rate scans a second: a replayed code
        # is cheaper than a new redemption, so a round that runs out would flatter the app.
        per_household = -(-args.redemption_rate * args.seconds * args.rounds // args.households)
        residents, codes, one_merchant, walking, cards, device = prepare(args.households, per_household, walkers)
        walking_cards = [card for _, card in walking]
        bare_proc = start("scripts.bench_bare:app", BARE_PORT, args.workers)
        now = datetime.now(timezone.utc).isoformat()
        report = {"action_type": "recycling", "variant": "paper", "quantity": "1.5", "unit": "kg", "occurred_at": now}
        walk = {"action_type": "walking", "quantity": "0.5", "unit": "km", "occurred_at": now}  # 20 a day before the cap
        n = 40_000
        rows = {
            "pending report": (BARE_PORT, [("POST", "/bare/write", report, residents[i % len(residents)][0])
                                           for i in range(n)],
                               APP_PORT, [("POST", "/api/v1/actions", report, residents[i % len(residents)][0])
                                          for i in range(n)]),
            "self-approved credit": (BARE_PORT, [("POST", "/bare/write", walk, walking[i % len(walking)][0])
                                                 for i in range(n)],
                                     APP_PORT, [("POST", "/api/v1/actions", walk, walking[i % len(walking)][0])
                                                for i in range(n)]),
            "redemption, 8 merchants": (BARE_PORT, [("POST", "/bare/redeem", {"code": c}, residents[i % len(residents)][0])
                                                    for i, (_, c) in enumerate(codes)],
                                        APP_PORT, [("POST", "/api/v1/merchant/redemptions", {"code": c}, h)
                                                   for h, c in codes]),
            "redemption, 1 merchant": (BARE_PORT, [("POST", "/bare/redeem", {"code": c}, residents[i % len(residents)][0])
                                                   for i, (_, c) in enumerate(one_merchant)],
                                       APP_PORT, [("POST", "/api/v1/merchant/redemptions", {"code": c}, h)
                                                  for h, c in one_merchant]),
            "wallet read": (BARE_PORT, [("GET", "/bare/read", None, residents[i % len(residents)][0]) for i in range(n)],
                            APP_PORT, [("GET", "/api/v1/wallet", None, residents[i % len(residents)][0])
                                       for i in range(n)]),
        }
        results = {}
        workdir = tempfile.mkdtemp(prefix="sjc-bench-")
        drive = (lambda port, reqs, label: run_wrk(port, reqs, args.clients, args.seconds, workdir, label)) \
            if use_wrk else (lambda port, reqs, label: load(port, reqs[:args.requests], args.clients))
        drive(BARE_PORT, rows["pending report"][1][:500], "warm")
        if args.only:
            rows = {name: row for name, row in rows.items() if _chosen(args.only, name)}
        for name, (bare_port, bare_reqs, app_port, app_reqs) in rows.items():
            rounds = []
            for r in range(args.rounds):
                share = (lambda items: items[r::args.rounds]) if "redemption" in name else (lambda items: items)
                label = f"{len(results)}-{r}"
                bare, app = drive(bare_port, share(bare_reqs), f"bare-{label}"), drive(app_port, share(app_reqs), f"app-{label}")
                app["cycled"] = app["n"] > len(share(app_reqs))  # (the ceiling's writes may repeat)
                rounds.append((bare, app))
            results[name] = _median_round(rounds)
        # A batch takes seconds, not milliseconds: fewer connections, a longer run, a generous timeout.
        for name, label, apart, among, variant in (
                ("device ingestion, shared households", "shared", False, walking_cards, "paper"),
                ("device ingestion, separate households", "apart", True, cards, "paper"),
                ("device ingestion, separate, no campaign", "pet", True, cards, "pet")):
            if args.only and not _chosen(args.only, name):
                continue
            batches = signed_batches(device, among, batches=400, size=500, label=label, apart=apart, variant=variant)
            results[name] = (None, run_wrk(APP_PORT, batches, 2, args.seconds * 3, workdir, label)
                             if use_wrk else load(APP_PORT, batches[:20], 2))
    finally:
        for proc in (app_proc, bare_proc):
            if proc:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    driver = f"wrk, {args.seconds} s per run" if use_wrk else f"Python threads, {args.requests} requests per run"
    print(f"{args.clients} connections, {args.workers} gunicorn workers each, PostgreSQL, {driver}")
    print(f"median of {args.rounds} rounds per row (ratios within each round: "
          + "; ".join(f"{name} {'/'.join(f'{r:.2f}' for r in bare['ratios'])}"
                      for name, (bare, _) in results.items() if bare) + ")")
    print(f"{'row':38} {'ceiling/s':>9} {'app/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}  non-2xx")
    for name, (bare, app) in results.items():
        ceiling = f"{bare['rps']:9.0f}" if bare else f"{'—':>9}"
        ratio = f"{app['rps'] / bare['rps']:6.2f}" if bare else f"{'—':>6}"
        cycled = "*" if app.get("cycled") else " "
        print(f"{name:37}{cycled} {ceiling} {app['rps']:8.0f} {ratio} {app['p50_ms']:7.1f} {app['p99_ms']:7.1f}  "
              f"{app['failures'] or 'none'}")
    for name, (bare, app) in results.items():
        if bare is None:
            print(f"{name}: {app['rps'] * 500:.0f} actions/s (batches of 500)")


if __name__ == "__main__":
    main()
