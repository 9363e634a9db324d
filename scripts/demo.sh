#!/usr/bin/env bash
# Install, build the schema, load demo data and serve the API and the staff console (/console/) on
# http://127.0.0.1:${PORT:-5000}
# with the embedded defaults: SQLite in instance/demo.db, background jobs inline, no Redis needed.
#   ./scripts/demo.sh           keep the demo data of earlier runs (seeding is safe to run twice)
#   ./scripts/demo.sh --reset   start from fresh demo data: deletes instance/demo.db (and its rate-limit
#                               counters, instance/demo.db-limits) and nothing else
set -euo pipefail
cd "$(dirname "$0")/.."
reset=false
for arg in "$@"; do
  case "$arg" in
    --reset) reset=true ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --reset)" >&2; exit 2 ;;
  esac
done
port="${PORT:-5000}"
[ -x .venv/bin/python ] || python3 -m venv .venv
log=$(mktemp)
.venv/bin/python -m pip install -q --upgrade pip >"$log" 2>&1 || true
.venv/bin/python -m pip install -q -e . >"$log" 2>&1 || { cat "$log"; exit 1; }
unset REDIS_URL
# Demo data and the built-in development secrets: never a production setting (see README, Production).
export APP_ENV=demo
# The demo always runs on its own SQLite file, whatever DATABASE_URL says, so --reset can only ever
# delete that file.
demo_db="$PWD/instance/demo.db"
export DATABASE_URL="sqlite:///$demo_db"
mkdir -p instance
if $reset; then
  rm -f "$demo_db" "$demo_db-wal" "$demo_db-shm" "$demo_db-limits" "$demo_db-limits-wal" "$demo_db-limits-shm"
  echo "demo data reset: removed instance/demo.db"
fi
.venv/bin/flask --app app db upgrade
.venv/bin/flask --app app seed-demo
echo "API on http://127.0.0.1:$port/api/v1 — docs at http://127.0.0.1:$port/api/v1/docs (Ctrl-C stops)"
echo "Staff console on http://127.0.0.1:$port/console/ (中文; English with ?lang=en), password demo-pass-2026:"
echo "  community staff  13800000001  (review queue with pending demo actions, cards, campaigns, merchants, flags)"
echo "  district admin   13800000000"
echo "  park manager     13800000003"
echo "  residents and merchant staff cannot open the console"
exec .venv/bin/flask --app app run --host 127.0.0.1 --port "$port"
