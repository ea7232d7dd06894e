"""What every worker log line carries, and one line (and one histogram sample) per job stage.

``task_prerun`` binds the task name, the job id (a job's task has it as first argument) and
the id of the request that created the job (sent as the ``lwm_request_id`` task header), so
every line a task logs, down to the sandbox calls, carries them; ``task_postrun`` unbinds.
``StageClock`` is the one place where stages are timed: the job's ``report(stage, ...)``
enters a stage, which ends the previous one, and the job's end closes the last one.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from celery.signals import setup_logging, task_postrun, task_prerun

from marketplace.core import logs

logger = logging.getLogger("workers.stages")
REQUEST_ID_HEADER = "lwm_request_id"
_BOUND: dict[str, list[Any]] = {}  # Celery task id -> context tokens, for task_postrun


@setup_logging.connect
def _use_the_settings_logging(**_: Any) -> None:
    """Celery adds no handler or format of its own: worker lines are formatted as the web's
    (``settings.LOGGING``: ``LWM_LOG_FORMAT``, ``LOG_LEVEL``), so one parser reads both.

    What libraries print (progress bars, warnings) becomes log lines too, with the job's ids
    when a task prints it: a JSON log stays one object per line.
    """
    from logging.config import dictConfig

    from celery import current_app
    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)
    current_app.log.redirect_stdouts_to_logger(
        logging.getLogger("celery.redirected"), loglevel=logging.WARNING
    )


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    name = getattr(task, "name", None)
    job_id = str(args[0]) if name in logs.JOB_TASK_NAMES and args else None
    request_id = getattr(getattr(task, "request", None), REQUEST_ID_HEADER, None)
    _BOUND[str(task_id)] = logs.bind(
        task=name, job_id=job_id, request_id=logs.accepted_id(request_id), stage=None
    )


@task_postrun.connect
def _unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    tokens = _BOUND.pop(str(task_id), None)
    if tokens:
        logs.unbind(tokens)


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "done"
    from marketplace.core.exceptions import ApplicationError
    from marketplace.jobs.services import JobCancelled

    if isinstance(exc, JobCancelled):
        return "cancelled"
    return "rejected" if isinstance(exc, ApplicationError) else "failed"


class StageClock:
    """``with StageClock(task) as clock:`` ... ``clock.enter(stage)`` at each report."""

    def __init__(self, task: str):
        self.task = task
        self.stage: str | None = None
        self.started = 0.0
        self._tokens: list[Any] = []

    def enter(self, stage: str) -> None:
        if stage == self.stage:
            return
        self.close("done")
        self.stage, self.started = stage, time.perf_counter()
        self._tokens = logs.bind(stage=stage)
        logger.info("stage %s started", stage, extra={"event": "stage-start"})

    def close(self, outcome: str) -> None:
        if self.stage is None:
            return
        from marketplace.core.metrics import STAGE_SECONDS

        seconds = time.perf_counter() - self.started
        logger.info(
            "stage %s %s in %.3fs",
            self.stage,
            outcome,
            seconds,
            extra={"event": "stage-end", "outcome": outcome, "seconds": round(seconds, 4)},
        )
        STAGE_SECONDS.labels(self.task, self.stage, outcome).observe(seconds)
        logs.unbind(self._tokens)
        self.stage, self._tokens = None, []

    def __enter__(self) -> StageClock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(_outcome(exc))
