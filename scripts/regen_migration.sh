#!/usr/bin/env bash
# Development helper while nothing has been released: rebuild the single initial
# migration from the models. Once a release exists, add new migrations instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*.py
DATABASE_URL="sqlite:///$tmp/gen.db" .venv/bin/flask --app app db migrate -m "initial schema" --rev-id 0001_initial >/dev/null
rm -rf "$tmp"
ls migrations/versions
