#!/usr/bin/env bash
# Install, build the schema, load demo data and serve the API on http://127.0.0.1:5000
# with the embedded defaults: SQLite under instance/, background jobs inline, no Redis needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
log=$(mktemp)
.venv/bin/python -m pip install -q --upgrade pip >"$log" 2>&1 || true
.venv/bin/python -m pip install -q -e . >"$log" 2>&1 || { cat "$log"; exit 1; }
unset DATABASE_URL REDIS_URL
.venv/bin/flask --app app db upgrade
.venv/bin/flask --app app seed-demo
echo "API on http://127.0.0.1:5000/api/v1 — docs at http://127.0.0.1:5000/api/v1/docs (Ctrl-C stops)"
exec .venv/bin/flask --app app run --host 127.0.0.1 --port "${PORT:-5000}"
