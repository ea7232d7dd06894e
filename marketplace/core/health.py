"""Health checks for /healthz: each returns a dict with ``ok`` and what it saw."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection

Check = Callable[[], dict[str, Any]]


def _timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure, it never raises
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round(1000 * (time.perf_counter() - start), 1)
    return result


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
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        os.makedirs(folder, exist_ok=True)
        return {"ok": os.access(folder, os.W_OK), "transport": transport}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
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


CHECKS: dict[str, Check] = {
    "database": check_database,
    "broker": check_broker,
    "worker": check_worker,
    "storage": check_storage,
    "index": check_index,
    "sandbox": check_sandbox,
}


def run_checks() -> dict[str, dict[str, Any]]:
    return {name: _timed(check) for name, check in CHECKS.items()}
