#!/usr/bin/env sh
# web | worker | beat | migrate | any command.
# Migrations run once per deployment in the one-shot `migrate` service (docker/compose.yaml), never in
# `web`: replicas starting together would race on the same schema change.
set -e
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  # Metrics files are named <type>_<host>-<pid>.db (marketplace/core/metrics.py): drop this container's
  # files of an earlier run, never another container's (they may share the folder).
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  rm -f "$PROMETHEUS_MULTIPROC_DIR"/*_"$(hostname | tr -c 'A-Za-z0-9-\n' '-' | cut -c1-60)"-*.db
fi
case "$1" in
  web)
    exec gunicorn marketplace.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" --timeout 120 ;;
  worker)
    exec celery -A workers.celery worker -Q "${WORKER_QUEUES:-default,compute}" -c "${WORKER_CONCURRENCY:-2}" --quiet ;;
  beat)
    exec celery -A workers.celery beat --quiet --schedule /var/lib/lwm/celerybeat-schedule ;;
  migrate)
    exec python manage.py migrate --noinput ;;
  *)
    exec "$@" ;;
esac
