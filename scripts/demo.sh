#!/usr/bin/env bash
# The market on embedded defaults (SQLite, local files, filesystem broker): migrate, create
# the demo accounts, start a Celery worker and the web server, seed the demo market.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG="${DEBUG:-true}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
HOST="${LWM_HOST:-127.0.0.1}" PORT="${LWM_PORT:-8000}"
export SITE_URL="${SITE_URL:-http://$HOST:$PORT}"
start=$(date +%s)

scripts/install-system-deps.sh || echo "warning: optional system packages missing (image demo data, browser tests)"
$PY manage.py migrate --noinput >/dev/null
$PY manage.py ensure_demo_users

mkdir -p var/log
$PY -m celery -A workers.celery worker -B -Q default,compute -c 2 -n "demo@%h" -l INFO \
  --schedule var/celerybeat-schedule >var/log/worker.log 2>&1 &
worker=$!
$PY manage.py runserver "$HOST:$PORT" --noreload >var/log/web.log 2>&1 &
web=$!
trap 'kill $worker $web 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 60); do curl -fs "$SITE_URL/readyz" >/dev/null 2>&1 && break; sleep 1; done
# The seeder is a client program (demo/, beside client/): it publishes through the HTTP API.
$PY -m demo --url "$SITE_URL"
cat <<MSG

  Learnware Market is running at $SITE_URL   (ready in $(( $(date +%s) - start )) s)
  Log in as demo / demo-password  (admin console: $SITE_URL/admin/ as admin / admin-password)
  API docs: $SITE_URL/api/v1/docs/    Logs: var/log/web.log, var/log/worker.log
  Press Ctrl-C to stop.
MSG
wait $web
