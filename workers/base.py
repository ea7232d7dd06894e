"""``JobTask``: the base of every task that runs a job record.

Policy lives here, not in each task: claim before work (so a duplicate delivery is a
no-op), a heartbeat thread while running (so a killed worker's job is taken over or
reaped), user errors reject the job, infrastructure failures (by type, see
``marketplace.core.faults``) hand the job back to the dispatcher with backoff up to
LWM_JOB_TRANSIENT_RETRIES and then fail it with ``job:infra:<part>-...``; anything else
fails the job with its reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings

from marketplace.core import logs
from marketplace.core.exceptions import ApplicationError
from marketplace.core.faults import infrastructure_code, infrastructure_part
from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.jobs.services import (
    Claim,
    JobCancelled,
    job_claim,
    job_finish,
    job_heartbeat,
    job_progress,
    job_release_for_retry,
)
from workers.observability import StageClock

logger = logging.getLogger(__name__)


class Report(Protocol):
    """How a step tells the job record its progress: ``report(stage, done, total[, message])``."""

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None: ...


class _JobHeartbeat(threading.Thread):
    def __init__(self, job_id: str, worker: str):
        super().__init__(name=f"job-heartbeat-{job_id}", daemon=True)
        self.job_id, self.worker = job_id, worker
        self.stopped = threading.Event()
        self.cancelled = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            logs.bind(job_id=self.job_id)  # this thread's own context: its lines name the job too
            while not self.stopped.wait(settings.LWM_WORKER_HEARTBEAT_SECONDS):
                try:
                    if job_heartbeat(job_id=self.job_id, worker=self.worker):
                        self.cancelled.set()
                except Exception:  # noqa: BLE001 - a database blink must not stop the beats for good
                    logger.warning("job %s: heartbeat failed; retrying", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()


def _request_context(job_id: str) -> dict[str, str | None]:
    """The creating request's id from the job row, for a task that did not bring it as a header."""
    if logs.current("request_id"):
        return {}
    return {"request_id": Job.objects.filter(id=job_id).values_list("request_id", flat=True).first() or None}


class JobTask(Task):
    """Base class: subclasses' bodies call ``self.run_job(job_id, step)``."""

    abstract = True
    acks_late = True
    # No class-wide max_retries/retry_backoff: each self.retry() below names its own bound and countdown.

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(getattr(cls, "name", None), str):  # each @app.task(base=JobTask) makes a subclass
            logs.JOB_TASK_NAMES.add(cls.name)

    @property
    def worker_name(self) -> str:
        return f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"

    def run_job(self, job_id: str, step: Callable[[Job, Report], dict[str, Any] | None]) -> dict[str, Any]:
        try:
            claim = job_claim(job_id=job_id, worker=self.worker_name)
        except Exception as exc:
            if infrastructure_part(exc) is None:
                raise
            # The database blinked before the claim: nothing ran. The job stays pending and the
            # dispatcher sends it again; a quick retry through the broker usually wins first.
            logger.warning("job %s: cannot claim (%s: %s); retrying", job_id, type(exc).__name__, exc)
            raise self.retry(countdown=min(60, 2**self.request.retries), max_retries=10) from exc
        if claim is Claim.FINISHED:
            return {"job": job_id, "skipped": "already finished"}
        if claim is Claim.BUSY:
            # Another worker holds it and is alive; look again once its heartbeat could go stale.
            raise self.retry(countdown=settings.LWM_WORKER_STALE_SECONDS, max_retries=50)
        heartbeat = _JobHeartbeat(job_id, self.worker_name)
        heartbeat.start()
        try:
            with logs.bound(**_request_context(job_id)):
                return self._execute(job_id, step)
        finally:
            heartbeat.stopped.set()

    def _execute(self, job_id: str, step: Callable[[Job, Report], dict[str, Any] | None]) -> dict[str, Any]:
        job = Job.objects.get(id=job_id)
        clock = StageClock(self.name)

        def report(stage: str, done: int, total: int, message: str = "") -> None:
            clock.enter(stage)
            job_progress(
                job_id=job_id, stage=stage, progress=int(100 * done / max(total, 1)), message=message
            )

        try:
            with clock:
                result = step(job, report) or {}
        except JobCancelled:
            job_finish(job_id=job_id, status=JobStatus.CANCELLED, message="cancelled by the user")
            return {"job": job_id, "status": "cancelled"}
        except ApplicationError as exc:
            from marketplace.core.metrics import JOB_REJECTIONS

            logger.warning("job rejected: %s: %s", exc.code, exc.message, extra={"error_code": exc.code})
            JOB_REJECTIONS.labels(self.name, exc.code).inc()
            job_finish(job_id=job_id, status=JobStatus.REJECTED, message=exc.message, error=exc.to_dict())
            return {"job": job_id, "status": "rejected"}
        except SoftTimeLimitExceeded:
            message = f"time limit of {settings.CELERY_TASK_SOFT_TIME_LIMIT} s exceeded"
            job_finish(
                job_id=job_id,
                status=JobStatus.FAILED,
                message=message,
                error={"code": "job:app:time-limit", "message": message},
            )
            return {"job": job_id, "status": "failed"}
        except Exception as exc:
            part = infrastructure_part(exc)
            if part is None:
                raise  # a bug: on_failure fails the job as job:app:crashed
            return self._infrastructure_failed(job_id, exc, part)
        job_finish(job_id=job_id, status=JobStatus.SUCCEEDED, message="done", result=result)
        return {"job": job_id, "status": "succeeded"}

    def _infrastructure_failed(self, job_id: str, exc: Exception, part: str) -> dict[str, Any]:
        """Retry later through the dispatcher (the job row keeps the work), or fail with a clear code."""
        logger.warning("job %s: %s unavailable: %s: %s", job_id, part, type(exc).__name__, exc)
        # What the owner sees names the failure, never our endpoints or paths (those go to the log above).
        strerror = getattr(exc, "strerror", None)
        reason = type(exc).__name__ + (f": {strerror}" if isinstance(strerror, str) and strerror else "")
        try:
            delay = job_release_for_retry(job_id=job_id, worker=self.worker_name, reason=reason, part=part)
            if delay is not None:
                return {"job": job_id, "status": "retrying", "in_seconds": delay}
            code = infrastructure_code(exc, part)
            message = f"{part} unavailable after {settings.LWM_JOB_TRANSIENT_RETRIES} retries: {reason}"
            job_finish(
                job_id=job_id,
                status=JobStatus.FAILED,
                message=message,
                error={"code": code, "message": message, "details": {"part": part}},
            )
            return {"job": job_id, "status": "failed"}
        except Exception:  # noqa: BLE001 - the database is down too: the stale-job recovery resends it
            logger.warning(
                "job %s: cannot record the failure; recovery will resend it", job_id, exc_info=True
            )
            return {"job": job_id, "status": "unrecorded"}

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """The last word on an unexpected crash: the job is failed with the reason."""
        if isinstance(exc, Retry) or not args:
            return
        message = f"{type(exc).__name__}: {exc}"
        logger.error("job %s failed: %s", args[0], message)
        if infrastructure_part(exc) is not None:
            return  # nothing could be recorded (claim retries spent): the dispatcher sends the job again
        job_finish(
            job_id=args[0],
            status=JobStatus.FAILED,
            message=message,
            error={"code": "job:app:crashed", "message": message},
        )
