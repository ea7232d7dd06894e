"""Health checks for /livez, /readyz and /healthz: each part returns a dict with ``ok`` and what it saw.

Parts are pluggable: ``health_check_register(name, check, readiness=...)`` adds one (e.g. the
sandbox). Each part runs in its own thread with a deadline (LWM_HEALTH_CHECK_TIMEOUT), so one
hanging dependency answers "timed out" instead of holding the probe; the whole report stays
under 2 s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection

Check = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Part:
    check: Check
    readiness: bool  # needed to serve traffic (/readyz); otherwise only in the full /healthz report


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    from workers.celery import app

    url = settings.CELERY_BROKER_URL
    transport = url.split("://", 1)[0]
    if transport == "filesystem":
        folder = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        os.makedirs(folder, exist_ok=True)
        return {"ok": os.access(folder, os.W_OK), "transport": transport}
    with app.connection_for_write() as conn:
        # kombu takes fractional seconds; its stub says int.
        conn.ensure_connection(max_retries=1, timeout=settings.LWM_HEALTH_CHECK_TIMEOUT)  # type: ignore[arg-type]
    return {"ok": True, "transport": transport}


def check_worker() -> dict[str, Any]:
    from marketplace.jobs.selectors import workers_alive

    alive = list(workers_alive().values_list("hostname", flat=True))
    return {"ok": bool(alive), "workers": alive}


def check_storage() -> dict[str, Any]:
    storage = storages["default"]
    backend = type(storage).__name__
    storage.exists("healthz/probe")  # one round trip: a HEAD on S3, a stat on files
    return {"ok": True, "backend": backend}


def check_index() -> dict[str, Any]:
    from marketplace.search.health import index_status

    return index_status()


def check_sandbox() -> dict[str, Any]:
    from workers.sandbox.isolation import isolation_status

    return isolation_status()


PARTS: dict[str, Part] = {
    "database": Part(check_database, readiness=True),
    "broker": Part(
        check_broker, readiness=False
    ),  # uploads still answer 202 without it (the job row is the outbox)
    "worker": Part(check_worker, readiness=False),  # a worker outage must not restart the web replicas
    "storage": Part(check_storage, readiness=True),
    "index": Part(check_index, readiness=False),
    "sandbox": Part(check_sandbox, readiness=False),  # the workers run uploads; the web serves without it
}


def health_check_register(name: str, check: Check, *, readiness: bool = False) -> None:
    """Add (or replace) a part of the health report; ``readiness`` parts also gate /readyz."""
    PARTS[name] = Part(check, readiness)


def _run_in_thread(check: Check, box: dict[str, Any]) -> None:
    from django.db import connections

    start = time.perf_counter()
    try:
        box["result"] = check()
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure, it never raises
        box["result"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        box["ms"] = round(1000 * (time.perf_counter() - start), 1)
        connections.close_all()  # this thread's own connections


def run_checks(*, readiness_only: bool = False, timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Run the parts concurrently; a part still running at the deadline is reported down."""
    deadline = time.monotonic() + (timeout if timeout is not None else settings.LWM_HEALTH_CHECK_TIMEOUT)
    started: dict[str, tuple[threading.Thread, dict[str, Any]]] = {}
    for name, part in PARTS.items():
        if readiness_only and not part.readiness:
            continue
        box: dict[str, Any] = {}
        # Daemon threads, not a pool: a hung probe must never block the next probe's threads.
        thread = threading.Thread(
            target=_run_in_thread, args=(part.check, box), name=f"health-{name}", daemon=True
        )
        thread.start()
        started[name] = (thread, box)
    results: dict[str, dict[str, Any]] = {}
    for name, (thread, box) in started.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if "result" in box and not thread.is_alive():
            results[name] = {**box["result"], "ms": box.get("ms")}
        else:
            results[name] = {"ok": False, "error": "timed out", "ms": None}
    return results
