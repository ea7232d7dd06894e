#!/usr/bin/env sh
# web | worker | beat | any command.
set -e
case "$1" in
  web)
    python manage.py migrate --noinput
    exec gunicorn marketplace.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" --timeout 120 ;;
  worker)
    exec celery -A workers.celery worker -Q "${WORKER_QUEUES:-default,compute}" -c "${WORKER_CONCURRENCY:-2}" -l INFO ;;
  beat)
    exec celery -A workers.celery beat -l INFO --schedule /var/lib/lwm/celerybeat-schedule ;;
  *)
    exec "$@" ;;
esac
