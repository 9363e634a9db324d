"""The benchmark scripts stay runnable as the code under them moves (a small run, on PostgreSQL)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not conftest.DATABASE_URL.startswith("postgresql"),
                    reason="the export benchmark runs on PostgreSQL (the PostgreSQL + Redis run)")
def test_the_export_benchmark_runs_and_reports_every_export():
    import psycopg

    base, name = conftest.DATABASE_URL.rsplit("/", 1)
    scratch = f"{name}_scripts"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)).fetchone():
            conn.execute(f'CREATE DATABASE "{scratch}"')
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}

    done = subprocess.run([sys.executable, "scripts/export_bench.py", "--actions", "2000",
                           "--database-url", f"{base}/{scratch}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "generated 2,000 approved actions" in done.stdout
    assert "'actions': 2000" in done.stdout  # the last export's totals count every action once
    assert done.stdout.count(" csv ") >= 3 and " xlsx " in done.stdout and " json " in done.stdout
