#!/usr/bin/env bash
# ruff (lint and format), mypy, then the whole test suite: first on PostgreSQL + Redis (+ the S3 endpoint and worker the
# fixtures start), then the integration tests again on the embedded defaults
# (SQLite + the filesystem broker). With CI=true a missing service is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

reachable() { $PY - "$1" "$2" <<'PYEOF'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PYEOF
}

ci=false; [[ "${CI:-}" =~ ^(1|true|yes)$ ]] && ci=true
scripts/install-system-deps.sh || { $ci && exit 1; echo "warning: system packages missing; tests that need them skip"; }

start=$(date +%s)
status=0
echo "== ruff =="
.venv/bin/ruff check . || status=$?
.venv/bin/ruff format --check --quiet . || { echo "ruff format: files above are not formatted (run .venv/bin/ruff format .)" >&2; status=1; }
if [[ $# -eq 0 ]]; then  # the whole run; a targeted one (arguments) skips the minutes of type checking
  echo "== mypy =="
  # The dev requirements install mypy with the Django/DRF stubs: a missing mypy is a broken setup, not a skip.
  [[ -x .venv/bin/mypy ]] || { echo "mypy is not installed in .venv (install the dev requirements)" >&2; exit 1; }
  .venv/bin/mypy marketplace workers specs client || status=$?
fi
run_id="${LWM_TEST_RUN_ID:-$$}"
if reachable 127.0.0.1 5432 && reachable 127.0.0.1 6379; then
  echo "== suite on PostgreSQL + Redis =="
  DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lwm}" \
  CELERY_BROKER_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/${LWM_TEST_REDIS_DB:-9}}" \
  LWM_VAR_DIR="var/test/pg-$run_id" \
    $PY -m pytest "$@" || status=$?
else
  $ci && { echo "CI: PostgreSQL or Redis is not reachable" >&2; exit 1; }
  echo "== PostgreSQL/Redis not reachable: whole suite on the embedded defaults =="
  LWM_VAR_DIR="var/test/embedded-$run_id" $PY -m pytest "$@" || status=$?
fi

if [[ $# -eq 0 ]]; then
  echo "== integration tests on the embedded defaults (SQLite + filesystem broker) =="
  env -u DATABASE_URL -u CELERY_BROKER_URL LWM_VAR_DIR="var/test/embedded-$run_id" \
    $PY -m pytest -m integration tests/integration || status=$?
fi
rm -rf "var/test/pg-$run_id" "var/test/embedded-$run_id"
echo "make test took $(( $(date +%s) - start )) s"
exit $status
