"""Server-side time of device ingestion: signed batches of 500 records through POST /integrations/actions.

    .venv/bin/python scripts/bench_ingest.py [--database postgresql://…/songjiang_bench_x] [--batches 6]

Builds the database from the migrations (PostgreSQL: the database is emptied first; default: a
fresh SQLite file), seeds the demo data (its factor set and active campaign), registers
`--households` households in the demo community and sends `--batches` batches of `--size` records
(recycling, paper, 1 kg: every record created and credited, each household well under its caps)
through the app in this process, one after another. Prints each batch's time and the actions per
second over them all, so only the server's work is timed: no HTTP client, no network.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/integrations/actions"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (emptied!); default: a fresh SQLite file")
    parser.add_argument("--households", type=int, default=300)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--one-by-one", action="store_true",
                        help="time the reference path (record_action per record) instead of the batch path")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='sjc-ingest-')}/bench.db"
    env = {"DATABASE_URL": url, "RATELIMIT_ENABLED": "false", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
           "REDIS_URL": "", "LOG_LEVEL": "WARNING", "APP_ENV": "development"}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from app import create_app
    from app.accounts import service as accounts
    from app.accounts.models import Community
    from app.auth import sign_request
    from app.extensions import db
    from app.integrations import service as integrations
    from app.ledger import service as ledger

    if args.one_by_one:
        integrations.ingest_records = integrations._ingest_records_one_by_one
    app = create_app()
    with app.app_context():
        import flask_migrate

        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        flask_migrate.upgrade()
    subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "seed-demo"], check=True, cwd=ROOT,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    with app.app_context():
        community = db.session.scalars(db.select(Community).where(Community.name.contains("演示"))).first()
        cards = []
        for h in range(args.households):
            user, _ = accounts.register({"phone": f"1350{h:07d}", "password": "bench-pass-1",
                                         "display_name": f"w{h}", "community_id": community.id})
            cards.append(user.household.card_number)
        device, secret = integrations.create_integration(name="bench meters", kind="device")
        device_id = device.id
        db.session.commit()

    client = app.test_client()
    statements = []
    if os.environ.get("BENCH_SQL"):
        from sqlalchemy import event

        with app.app_context():
            engine = db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def _started(conn, cursor, statement, parameters, context, executemany):
            conn.info["started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _ended(conn, cursor, statement, parameters, context, executemany):
            statements.append((time.perf_counter() - conn.info.pop("started"), " ".join(statement.split())[:110]))
    now = datetime.now(timezone.utc).isoformat()
    timings, cpu_times, created = [], [], 0
    for b in range(args.batches):
        records = [{"external_id": f"bench-{b}-{r}", "household_card": cards[(b * args.size + r) % len(cards)],
                    "action_type": "recycling", "variant": "paper", "quantity": "1", "unit": "kg",
                    "occurred_at": now} for r in range(args.size)]
        body = json.dumps({"records": records}).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Integration-Id": device_id, "X-Timestamp": stamp,
                   "X-Signature": sign_request(secret, stamp, "POST", PATH, body)}
        started, cpu = time.perf_counter(), time.process_time()
        if os.environ.get("BENCH_PROFILE") and b == args.batches - 1:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            reply = profile.runcall(client.post, PATH, data=body, headers=headers)
            pstats.Stats(profile).sort_stats(os.environ.get("BENCH_PROFILE")).print_stats(45)
        else:
            reply = client.post(PATH, data=body, headers=headers)
        timings.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
        assert reply.status_code == 200, reply.get_data(as_text=True)[:500]
        created += sum(r["status"] == "created" for r in reply.get_json()["results"])
        print(f"batch {b}: {timings[-1] * 1000:7.1f} ms (app CPU {cpu_times[-1] * 1000:.1f} ms), {len(statements)} statements"
              f" taking {sum(t for t, _ in statements) * 1000:.1f} ms")
        if os.environ.get("BENCH_SQL") and b == args.batches - 1:
            for spent, statement in statements:
                print(f"  {spent * 1000:7.1f} ms  {statement}")
        statements.clear()
    with app.app_context():
        problems = ledger.verify()
    total = sum(timings)
    print(f"{db_label(url)}: {args.batches} batches of {args.size}, {created} created; "
          f"median {statistics.median(timings) * 1000:.1f} ms per batch, "
          f"{args.batches * args.size / total:.0f} actions/s; ledger verify: {len(problems)} problems")


def db_label(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


if __name__ == "__main__":
    main()
