"""Per-connection database settings: a statement timeout for web requests.

A web request must not wait on one slow statement for longer than a client waits on it;
workers and management commands (index rebuilds, migrations) get their own bound.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# "web" is set by marketplace/wsgi.py and asgi.py, "worker" by workers.celery at start-up;
# anything else (manage.py commands, shells) is "other" and gets the worker's bound.
PROCESS_ROLE: dict[str, str] = {"role": "other"}


def statement_timeout_ms() -> int:
    if PROCESS_ROLE["role"] == "web":
        return settings.LWM_DB_STATEMENT_TIMEOUT_MS
    return settings.LWM_WORKER_DB_STATEMENT_TIMEOUT_MS


def on_connection_created(sender: Any, connection: Any, **_: Any) -> None:
    """Apply the statement timeout once per new PostgreSQL connection (not per query)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [str(statement_timeout_ms())])
