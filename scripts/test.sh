#!/usr/bin/env bash
# Install everything and run the whole suite twice: on the embedded SQLite default, then on
# PostgreSQL with Redis (127.0.0.1:5432 user postgres, 127.0.0.1:6379), starting them if they are
# down. Under CI=true an unreachable PostgreSQL or Redis fails the run; elsewhere it is reported
# and that half is left out. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1
.venv/bin/python -m pip install -q -e ".[dev]" >/dev/null 2>&1 || .venv/bin/python -m pip install -e ".[dev]" || exit 1

PG_URL="${TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/songjiang_test}"
REDIS="${TEST_REDIS:-redis://127.0.0.1:6379/15}"

pg_up() { .venv/bin/python - "$PG_URL" <<'PY' >/dev/null 2>&1
import sys, psycopg
url = sys.argv[1].rsplit("/", 1)[0] + "/postgres"
psycopg.connect(url, connect_timeout=3).close()
PY
}
redis_up() { .venv/bin/python -c "import redis,sys; redis.Redis.from_url('$REDIS', socket_timeout=3).ping()" >/dev/null 2>&1; }

start_services() {
  if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 20); do pg_up && break; sleep 1; done
  fi
  if ! redis_up && command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 20); do redis_up && break; sleep 1; done
  fi
}

echo "== test suite on SQLite (embedded default)"
env -u TEST_DATABASE_URL -u TEST_REDIS_URL .venv/bin/pytest "$@"
sqlite_rc=$?

start_services
if pg_up && redis_up; then
  .venv/bin/python - "$PG_URL" <<'PY' || exit 1
import sys, psycopg
url = sys.argv[1]
base, name = url.rsplit("/", 1)
with psycopg.connect(base + "/postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PY
  echo "== test suite on PostgreSQL + Redis"
  TEST_DATABASE_URL="$PG_URL" TEST_REDIS_URL="$REDIS" .venv/bin/pytest "$@"
  pg_rc=$?
else
  echo "PostgreSQL or Redis is unreachable ($PG_URL, $REDIS)"
  if [ "${CI:-}" = "true" ]; then
    echo "CI=true: that is a failure"; pg_rc=1
  else
    echo "leaving out the PostgreSQL + Redis run (it is required in CI)"; pg_rc=0
  fi
fi

echo "== SQLite: exit $sqlite_rc; PostgreSQL + Redis: exit $pg_rc"
[ "$sqlite_rc" -eq 0 ] && [ "$pg_rc" -eq 0 ]
