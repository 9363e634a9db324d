"""Where a hot path's time goes: cProfile over many in-process requests, grouped by library.

    .venv/bin/python scripts/profile_paths.py [--requests 2000] [--path wallet|report|credit|redeem|ingest]

Builds a fresh PostgreSQL database (songjiang_profile, or PROFILE_DB, on BENCH_PG), seeds the demo, then sends the
requests through the Flask test client (no gunicorn, no network) under cProfile. Prints the share
of the time spent in each library (Flask/Werkzeug, SQLAlchemy, marshmallow, psycopg, the app, ...),
then the functions with the most time of their own. Complements scripts/bench.py, which measures
from outside.
"""
import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("PROFILE_DB", "songjiang_profile")  # another name lets two runs go side by side
DB = f"{PG_BASE}/{DB_NAME}"

GROUPS = [  # (label, fragment of the file path), first match wins
    ("app", f"{ROOT}/app/"), ("sqlalchemy", "/sqlalchemy/"), ("psycopg", "/psycopg"),
    ("marshmallow", "/marshmallow/"), ("flask-smorest/webargs", "/flask_smorest/"),
    ("flask-smorest/webargs", "/webargs/"), ("flask-limiter/limits", "/flask_limiter/"),
    ("flask-limiter/limits", "/limits/"), ("werkzeug", "/werkzeug/"), ("flask", "/flask/"),
    ("jwt", "/jwt/"), ("json", "/json/"), ("logging", "/logging/"),
]


def group_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    for label, fragment in GROUPS:
        if fragment in filename:
            return label
    return "other python"


def instruments(on: bool) -> None:
    """Under `valgrind --tool=callgrind --instr-atstart=no`, count instructions only while the timed
    requests run: a repeatable measure of this process's CPU work on a machine whose speed wanders."""
    if os.environ.get("CALLGRIND"):
        import subprocess

        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True,
                       stdout=subprocess.DEVNULL)


def database_cpu_seconds() -> float:
    """The CPU time (user + system) of PostgreSQL's backends serving the profile's database, from /proc
    (the server runs on this machine); 0 where /proc cannot tell."""
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [DB_NAME])]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", choices=["wallet", "report", "credit", "redeem", "ingest"], default="wallet")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--echo", action="store_true", help="print the statements of one warm request and stop")
    parser.add_argument("--time-only", action="store_true", help="no profiler: the plain time (and CPU time) per request")
    parser.add_argument("--save", help="also write the raw profile here (for pstats or snakeviz)")
    args = parser.parse_args()

    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update({"DATABASE_URL": DB, "RATELIMIT_ENABLED": "false", "REDIS_URL": "", "LOG_LEVEL": "WARNING",
                       "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "APP_ENV": "development",
                       "REDEMPTION_CODES_LIVE_MAX": "100000", "REDEMPTION_CODE_TTL_SECONDS": "3600"})
    sys.path.insert(0, str(ROOT))
    from app import create_app
    from app.extensions import db
    from app.ledger import service as ledger

    app = create_app()
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
        app.test_cli_runner().invoke(args=["seed-demo"])
    client = app.test_client()

    def call(method, path, body=None, headers=None):
        reply = client.open(path, method=method, json=body, headers=headers or {})
        assert reply.status_code < 300, (path, reply.status_code, reply.get_data(as_text=True)[:300])
        return reply.get_json()

    admin = {"Authorization": "Bearer " + call("POST", "/api/v1/auth/login",
                                               {"phone": "13800000000", "password": "demo-pass-2026"})["access_token"]}
    community = next(c for c in call("GET", "/api/v1/communities")["items"] if "演示" in c["name"])
    residents = []
    for h in range(200):
        reply = call("POST", "/api/v1/auth/register", {"phone": f"1360{h:07d}", "password": "bench-pass-1",
                                                       "display_name": f"h{h}", "community_id": community["id"]})
        residents.append(({"Authorization": f"Bearer {reply['access_token']}"}, reply["household"]))
    now = datetime.now(timezone.utc).isoformat()
    n = args.requests
    if args.path == "wallet":
        requests = [("GET", "/api/v1/wallet", None, residents[i % 200][0]) for i in range(n)]
    elif args.path == "report":
        body = {"action_type": "recycling", "variant": "paper", "quantity": "1.5", "unit": "kg", "occurred_at": now}
        requests = [("POST", "/api/v1/actions", body, residents[i % 200][0]) for i in range(n)]
    elif args.path == "credit":
        body = {"action_type": "walking", "quantity": "0.5", "unit": "km", "occurred_at": now}
        requests = [("POST", "/api/v1/actions", body, residents[i % 200][0]) for i in range(min(n, 200 * 20))]
    elif args.path == "redeem":
        merchant = call("POST", "/api/v1/merchants", {"name": "Profile shop", "community_id": community["id"]}, admin)
        call("POST", "/api/v1/admin/staff", {"phone": "13700000001", "password": "demo-pass-2026",
                                             "display_name": "shop", "role": "merchant_staff",
                                             "merchant_id": merchant["id"]}, admin)
        shop = {"Authorization": "Bearer " + call("POST", "/api/v1/auth/login", {
            "phone": "13700000001", "password": "demo-pass-2026"})["access_token"]}
        reward = call("POST", f"/api/v1/merchants/{merchant['id']}/rewards",
                      {"name": "Tote bag", "points_cost": 10, "stock": 1_000_000}, shop)
        with app.app_context():
            for _, household in residents:
                ledger.award(household["id"], 100_000, kind="adjustment", ref_type="profile", ref_id="seed")
            db.session.commit()
        requests = [("POST", "/api/v1/merchant/redemptions",
                     {"code": call("POST", "/api/v1/redemption-codes", {"reward_id": reward["id"]},
                                   residents[i % 200][0])["code"]}, shop) for i in range(n)]
    else:
        from app.auth import sign_request

        device = call("POST", "/api/v1/integrations", {"name": "profile meters", "kind": "device"}, admin)
        requests = []
        for b in range(max(1, n // 500)):
            records = [{"external_id": f"p-{b}-{r}", "household_card": residents[r % 200][1]["card_number"],
                        "action_type": "recycling", "variant": "paper", "quantity": "1", "unit": "kg",
                        "occurred_at": now} for r in range(500)]
            raw = json.dumps({"records": records})
            stamp = str(int(time.time()))
            requests.append(("POST", "/api/v1/integrations/actions", raw, {
                "X-Integration-Id": device["id"], "X-Timestamp": stamp, "Content-Type": "application/json",
                "X-Signature": sign_request(device["secret"], stamp, "POST", "/api/v1/integrations/actions",
                                            raw.encode())}))

    def send(method, path, body, headers):
        if isinstance(body, str):
            reply = client.open(path, method=method, data=body, headers=headers)
        else:
            reply = client.open(path, method=method, json=body, headers=headers)
        assert reply.status_code < 300, (path, reply.status_code, reply.get_data(as_text=True)[:300])

    warm = min(20, len(requests) // 5)
    for item in requests[:warm]:  # warm caches: factor rows, logins, compiled statements
        send(*item)
    if args.echo:
        from sqlalchemy import event

        with app.app_context():
            engine = db.engine
        seen, started = [], []
        event.listen(engine, "before_cursor_execute", lambda *a: started.append(time.perf_counter()))
        record = lambda conn, cursor, statement, *rest: seen.append(  # noqa: E731
            f"{(time.perf_counter() - started.pop()) * 1000:7.2f} ms  " + " ".join(statement.split())[:130])
        event.listen(engine, "after_cursor_execute", record)
        event.listen(engine, "commit", lambda conn: seen.append("COMMIT"))
        send(*requests[warm])
        event.remove(engine, "after_cursor_execute", record)
        print(f"{args.path}: {len(seen)} statements\n  " + "\n  ".join(seen))
        return
    if args.time_only:
        server = database_cpu_seconds()
        instruments(True)
        started, cpu = time.perf_counter(), time.process_time()
        for item in requests[warm:]:
            send(*item)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        instruments(False)
        server = database_cpu_seconds() - server
        count = len(requests) - warm
        # CPU: this process only (Python), so steadier than the wall time on a busy machine
        print(f"{args.path}: {wall / count * 1000:.3f} ms per request, in process, no profiler; "
              f"{cpu / count * 1000:.3f} ms of it on this process's CPU, "
              f"{server / count * 1000:.3f} ms on PostgreSQL's (its backends for this database)")
        return
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for item in requests[warm:]:
        send(*item)
    profile.disable()
    wall = time.perf_counter() - started
    count = len(requests) - warm
    stats = pstats.Stats(profile)
    by_group = defaultdict(float)
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        by_group[group_of(filename)] += own
    total = sum(by_group.values())
    print(f"{args.path}: {count} requests in {wall:.2f} s under the profiler, "
          f"{wall / count * 1000:.2f} ms each (profiled; about half that without it)")
    for label, seconds in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"  {label:24} {seconds / total * 100:5.1f} %  {seconds / count * 1000:6.3f} ms/request")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    print("the app's own functions, by time including what they call:")
    stats.sort_stats("cumulative").print_stats(f"{ROOT}/app/", args.top)
    if args.save:
        profile.dump_stats(args.save)


if __name__ == "__main__":
    main()
