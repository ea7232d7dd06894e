"""Per-connection database settings: a statement timeout for web requests.

A web request must not wait on one slow statement for longer than a client waits on it;
a worker's long statements (index snapshots, bulk reads) get their own bound.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# Set by the Celery worker at start-up (workers.celery); every other process is "web".
PROCESS_ROLE: dict[str, bool] = {"worker": False}


def statement_timeout_ms() -> int:
    if PROCESS_ROLE["worker"]:
        return settings.LWM_WORKER_DB_STATEMENT_TIMEOUT_MS
    return settings.LWM_DB_STATEMENT_TIMEOUT_MS


def on_connection_created(sender: Any, connection: Any, **_: Any) -> None:
    """Apply the statement timeout once per new PostgreSQL connection (not per query)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [str(statement_timeout_ms())])
