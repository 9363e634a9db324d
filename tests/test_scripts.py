"""The benchmark scripts stay runnable as the code under them moves (a small run, on PostgreSQL)."""
import ast
import os
import re
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


def test_every_request_of_the_locustfile_is_a_route_of_the_app(app):
    # Read, not imported: locust is not a dependency of the project.
    tree = ast.parse((ROOT / "locustfile.py").read_text(encoding="utf-8"))
    endpoints = next(ast.literal_eval(node.value) for node in tree.body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ENDPOINTS")
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    named = {arg.value for node in calls if getattr(node.func, "attr", getattr(node.func, "id", None)) == "call"
             for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    direct = [node.func.attr for node in calls if isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "post", "put", "patch", "delete", "request")
              and "client" in ast.unparse(node.func.value)]
    adapter = app.url_map.bind("localhost")

    unknown = named - set(endpoints)
    missing = []
    for name, (method, template) in endpoints.items():
        path = re.sub(r"{\w+}", "x1", template)
        try:
            adapter.match(path, method=method)
        except Exception as refusal:  # NotFound, MethodNotAllowed
            missing.append(f"{name}: {method} {template} ({type(refusal).__name__})")

    assert {"wallet", "report", "redemption code", "redeem"} <= named  # the mix it claims to send
    assert unknown == set(), f"requests not in ENDPOINTS: {unknown}"
    assert direct == ["request"], "every request goes through call() and ENDPOINTS"
    assert missing == [], "\n".join(missing)
