"""Say at worker start whether uploaded models can run, and how isolated (the same status as /healthz)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from workers.sandbox.isolation import isolation_status

logger = logging.getLogger(__name__)


@worker_ready.connect
def report_isolation(sender: Any = None, **_: Any) -> None:
    status = isolation_status()
    if not status["ok"]:
        logger.error(
            "sandbox unavailable: uploaded models will NOT run (sandbox:unavailable-isolation): %s",
            status["reason"],
        )
    elif status["mode"] == "unisolated":
        logger.warning("sandbox: %s", status["warning"])
    else:
        logger.info("sandbox: bubblewrap isolation in force (%s)", ", ".join(status["guarantees"]))
