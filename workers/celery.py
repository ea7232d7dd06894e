"""The Celery application: a leaf module, so the core can enqueue by task name without
importing any task (``app.send_task("publish.run", args=[...])``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.base")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task modules live in workers/tasks/; the worker imports them at start-up, the web never does.
app.autodiscover_tasks(lambda: ["workers"], related_name="tasks")


def send_task_on_commit(name: str, *, args: list[object], queue: str = "default") -> None:
    """Enqueue ``name`` once the surrounding transaction commits, so the worker sees the rows."""
    from django.db import transaction

    transaction.on_commit(lambda: app.send_task(name, args=args, queue=queue))
