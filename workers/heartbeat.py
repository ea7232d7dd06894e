"""Worker liveness as a database row, refreshed by a thread in the worker's main process.

A row (not a broadcast ping) works with every transport, including the filesystem one,
and a SIGKILLed worker simply stops refreshing it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

_stop = threading.Event()
logger = logging.getLogger(__name__)


def _beat(hostname: str, queues: str, started: Any) -> None:
    from marketplace.jobs.models import WorkerHeartbeat
    from marketplace.jobs.services import jobs_dispatch_pending, jobs_recover_stale

    last_recovery = 0.0
    while not _stop.is_set():
        close_old_connections()
        try:
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname,
                defaults={
                    "pid": os.getpid(),
                    "queues": queues,
                    "started_at": started,
                    "last_seen_at": timezone.now(),
                },
            )
            # Every live worker looks for jobs orphaned by a dead one, so recovery needs no beat process.
            if time.monotonic() - last_recovery >= settings.LWM_WORKER_STALE_SECONDS:
                last_recovery = time.monotonic()
                jobs_recover_stale()
            # ...and sends the jobs the broker never got (the job row is the outbox) or whose retry is due.
            jobs_dispatch_pending()
        except Exception:  # noqa: BLE001 - a database hiccup must not kill the heartbeat thread
            logger.warning("worker heartbeat failed; retrying", exc_info=True)
            from django.db import connection

            connection.close()
        _stop.wait(settings.LWM_WORKER_HEARTBEAT_SECONDS)


@worker_ready.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker@{os.uname().nodename}"
    queues = ",".join(
        sorted(q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", []) or [])
    )
    _stop.clear()
    thread = threading.Thread(
        target=_beat, args=(hostname, queues, timezone.now()), name="lwm-heartbeat", daemon=True
    )
    thread.start()


@worker_shutdown.connect
def stop_heartbeat(sender: Any = None, **_: Any) -> None:
    from marketplace.jobs.models import WorkerHeartbeat

    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        close_old_connections()
        WorkerHeartbeat.objects.filter(hostname=hostname).delete()
