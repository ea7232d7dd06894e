"""The Celery application: a leaf module, so the core can enqueue by task name without
importing any task (``app.send_task("publish.run", args=[...])``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.base")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task modules live in workers/tasks/; the worker imports them at start-up, the web never does.
app.autodiscover_tasks(lambda: ["workers"], related_name="tasks")
import workers.observability  # noqa: E402,F401  (binds job/task/request ids for every worker log line)


def publish_task(
    name: str,
    *,
    args: list[object],
    queue: str = "default",
    task_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one task, giving up within about LWM_BROKER_PUBLISH_TIMEOUT (raises on failure).

    Callers keep the work in a job row, so a failed send is re-sent by the dispatcher rather
    than retried here while a web request waits.
    """
    from django.conf import settings

    timeout = settings.LWM_BROKER_PUBLISH_TIMEOUT
    # A fresh connection per send, not the shared producer pool: after a broker restart a pooled
    # connection can stay broken in a long-lived worker process, and the dispatcher must not
    # depend on it. Job creation is rare enough that one loopback/LAN connect per send is cheap.
    with app.connection_for_write(connect_timeout=timeout) as connection:
        app.send_task(
            name,
            args=args,
            queue=queue,
            connection=connection,
            retry=True,
            task_id=task_id,
            headers=headers,
            retry_policy={
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": timeout / 4,
                "interval_max": timeout / 4,
            },
        )


def send_task_on_commit(name: str, *, args: list[object], queue: str = "default") -> None:
    """Enqueue ``name`` once the surrounding transaction commits, so the worker sees the rows.

    Only for work that is safe to lose (a snapshot the next change triggers again); jobs go
    through ``marketplace.jobs.services.job_enqueue``, whose row is the outbox.
    """
    import logging

    from django.db import transaction

    def send() -> None:
        try:
            publish_task(name, args=args, queue=queue)
        except Exception:  # noqa: BLE001 - never turn a committed request into a 500
            logging.getLogger(__name__).warning(
                "could not send %s; it will be triggered again", name, exc_info=True
            )

    transaction.on_commit(send)


@celeryd_init.connect
def _mark_worker_process(**_: Any) -> None:
    from marketplace.core import db

    db.PROCESS_ROLE["role"] = "worker"
