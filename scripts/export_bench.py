"""Export benchmark: N synthetic approved actions on PostgreSQL, then timed exports with their peak memory.

    .venv/bin/python scripts/export_bench.py --actions 1000000 \
        --database-url postgresql://postgres@127.0.0.1:5432/songjiang_bench_district

Rebuilds the given database from the migrations (it must be a scratch database: its schema is dropped),
loads the geography and the project's factor set, generates households and N approved actions over
2026 set-based (INSERT … SELECT generate_series), fills the daily and household-month rollups from them
set-based, then runs each export in a fresh child process and reports its elapsed seconds, rows, file
size and the child's peak RSS (ru_maxrss).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXPORTS = [
    ("2026-01-01", "2026-11-30", ["street", "community", "action_type", "month"], "csv"),
    ("2026-01-01", "2026-11-30", ["street", "community", "action_type", "month"], "json"),
    ("2026-01-01", "2026-11-30", ["street", "community", "action_type", "month"], "xlsx"),
    ("2026-01-15", "2026-11-20", ["community", "action_type"], "csv"),
    ("2026-01-01", "2026-11-30", ["month"], "csv"),
]


def _app(url: str, export_dir: str):
    from app import create_app

    return create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": None, "JOBS_INLINE": True,
                       "EXPORT_DIR": export_dir, "LOG_LEVEL": "WARNING"})


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def prepare(url: str, actions: int, households: int) -> None:
    import flask_migrate
    import psycopg
    from sqlalchemy import text

    from app.accounts import service as accounts
    from app.activities import factors
    from app.district import rollups
    from app.extensions import db

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    app = _app(_sqlalchemy_url(url), tempfile.mkdtemp())
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        flask_migrate.upgrade()
        accounts.load_geography()
        factor_set = factors.load_project_factors()
        db.session.commit()
        started = time.perf_counter()
        db.session.execute(text("""
            INSERT INTO households (id, community_id, invite_code, invite_expires_at, card_number, created_at)
            SELECT md5('h' || g), c.ids[1 + g % array_length(c.ids, 1)], upper(substr(md5('i' || g), 1, 10)),
                   now(), lpad(g::text, 12, '0'), now()
            FROM generate_series(0, :households - 1) g,
                 (SELECT array_agg(id ORDER BY position, id) AS ids FROM communities) c
        """), {"households": households})
        db.session.execute(text("""
            INSERT INTO actions (id, household_id, community_id, action_type, variant, quantity, credited_quantity,
                                 unit, occurred_at, source, status, appeal, factor_id, reduction_g, verified,
                                 base_points, campaign_points, points, created_at, approved_at)
            SELECT md5('a' || g), md5('h' || x.h), c.ids[1 + x.h % array_length(c.ids, 1)],
                   f.types[x.r], NULLIF(f.variants[x.r], ''), x.q, x.q, f.units[x.r], x.ts, 'staff', 'approved',
                   false, f.ids[x.r], floor(x.q * f.kg[x.r] * 1000)::bigint, f.ver[x.r],
                   floor(x.q * f.pts[x.r])::bigint, 0, floor(x.q * f.pts[x.r])::bigint, x.ts, x.ts
            FROM generate_series(0, :actions - 1) g
            CROSS JOIN (SELECT array_agg(id ORDER BY position, id) AS ids FROM communities) c
            CROSS JOIN (SELECT array_agg(id ORDER BY position) AS ids, array_agg(action_type ORDER BY position) AS types,
                               array_agg(variant ORDER BY position) AS variants, array_agg(unit ORDER BY position) AS units,
                               array_agg(kgco2e_per_unit ORDER BY position) AS kg,
                               array_agg(points_per_unit ORDER BY position) AS pts,
                               array_agg(verifiable ORDER BY position) AS ver, count(*) AS n
                        FROM factor_rows WHERE factor_set_id = :factor_set) f
            CROSS JOIN LATERAL (SELECT (g::bigint * 7919) % :households AS h, 1 + (g % f.n)::int AS r,
                                       ((g % 5) + 1)::numeric AS q,
                                       timestamp '2026-01-01' + (g % 334) * interval '1 day'
                                           + ((g * 37) % 86400) * interval '1 second' - interval '8 hours' AS ts) x
        """), {"actions": actions, "households": households, "factor_set": factor_set.id})
        generated = time.perf_counter() - started
        days, months = rollups.rebuild()
        db.session.commit()
        rolled = time.perf_counter() - started - generated
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"generated {actions:,} approved actions of {households:,} households in {generated:.1f} s; "
          f"rollups ({days:,} daily rows, {months:,} household-month rows) in {rolled:.1f} s")


def run_one(url: str, spec: str) -> None:
    """In a child process: one export, timed; prints a JSON line."""
    from app.columns import new_id, utcnow
    from app.district import exports
    from app.district.models import Export
    from app.extensions import db

    period_from, period_to, group_by, fmt = json.loads(spec)
    export_dir = tempfile.mkdtemp(prefix="sjc-bench-exports-")
    app = _app(_sqlalchemy_url(url), export_dir)
    with app.app_context():
        from datetime import date, timedelta

        export = Export(id=new_id(), job_id=new_id(), created_by="bench", period_from=date.fromisoformat(period_from),
                        period_to=date.fromisoformat(period_to), group_by=",".join(group_by), format=fmt,
                        status="queued", expires_at=utcnow() + timedelta(days=30))
        db.session.add(export)
        db.session.commit()
        import openpyxl  # noqa: F401  loaded before the baseline, as a worker has it loaded
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        exports.build(export.id)
        db.session.commit()
        elapsed = time.perf_counter() - started
        export = db.session.get(Export, export.id)
        (Path(export_dir) / export.file_name).unlink()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(json.dumps({"seconds": round(elapsed, 2), "rows": export.row_count, "bytes": export.size_bytes,
                          "baseline_kib": baseline, "peak_kib": peak, "totals": json.loads(export.meta).get("totals")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/songjiang_bench_district"))
    parser.add_argument("--skip-prepare", action="store_true", help="reuse the data of an earlier run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.database_url, args.one)
        return
    if not args.skip_prepare:
        prepare(args.database_url, args.actions, args.households)
    print(f"{'period':<23} {'group_by':<38} {'format':<6} {'seconds':>8} {'rows':>7} {'bytes':>10} "
          f"{'peak RSS':>10} {'before export':>14}")
    for period_from, period_to, group_by, fmt in EXPORTS:
        child = subprocess.run([sys.executable, __file__, "--database-url", args.database_url, "--one",
                                json.dumps([period_from, period_to, group_by, fmt])],
                               capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{period_from}..{period_to} {','.join(group_by):<38} {fmt:<6} {result['seconds']:>8.2f} "
              f"{result['rows']:>7} {result['bytes']:>10} {result['peak_kib'] / 1024:>6.0f} MiB "
              f"{result['baseline_kib'] / 1024:>10.0f} MiB")
    print("totals of the last export:", result["totals"])


if __name__ == "__main__":
    main()
