"""``JobTask``: the base of every task that runs a job record.

Policy lives here, not in each task: claim before work (so a duplicate delivery is a
no-op), a heartbeat thread while running (so a killed worker's job is taken over or
reaped), user errors reject the job, transient errors retry with backoff, anything
else fails the job with its reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings

from marketplace.core.exceptions import ApplicationError, TransientError
from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.jobs.services import Claim, JobCancelled, job_claim, job_finish, job_heartbeat, job_progress

logger = logging.getLogger(__name__)

Report = Callable[[str, int, int], None]  # report(stage, done, total)


class _JobHeartbeat(threading.Thread):
    def __init__(self, job_id: str, worker: str):
        super().__init__(name=f"job-heartbeat-{job_id}", daemon=True)
        self.job_id, self.worker = job_id, worker
        self.stopped = threading.Event()
        self.cancelled = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.wait(settings.LWM_WORKER_HEARTBEAT_SECONDS):
                if job_heartbeat(job_id=self.job_id, worker=self.worker):
                    self.cancelled.set()
        finally:
            connection.close()


class JobTask(Task):
    """Base class: subclasses' bodies call ``self.run_job(job_id, step)``."""

    abstract = True
    acks_late = True
    max_retries = 5
    retry_backoff = True

    @property
    def worker_name(self) -> str:
        return f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"

    def run_job(self, job_id: str, step: Callable[[Job, Report], dict[str, Any] | None]) -> dict[str, Any]:
        claim = job_claim(job_id=job_id, worker=self.worker_name)
        if claim is Claim.FINISHED:
            return {"job": job_id, "skipped": "already finished"}
        if claim is Claim.BUSY:
            # Another worker holds it and is alive; look again once its heartbeat could go stale.
            raise self.retry(countdown=settings.LWM_WORKER_STALE_SECONDS, max_retries=50)
        heartbeat = _JobHeartbeat(job_id, self.worker_name)
        heartbeat.start()
        try:
            return self._execute(job_id, step)
        finally:
            heartbeat.stopped.set()

    def _execute(self, job_id: str, step: Callable[[Job, Report], dict[str, Any] | None]) -> dict[str, Any]:
        job = Job.objects.get(id=job_id)

        def report(stage: str, done: int, total: int, message: str = "") -> None:
            job_progress(job_id=job_id, stage=stage, progress=int(100 * done / max(total, 1)), message=message)

        try:
            result = step(job, report) or {}
        except JobCancelled:
            job_finish(job_id=job_id, status=JobStatus.CANCELLED, message="cancelled by the user")
            return {"job": job_id, "status": "cancelled"}
        except ApplicationError as exc:
            job_finish(job_id=job_id, status=JobStatus.REJECTED, message=exc.message, error=exc.to_dict())
            return {"job": job_id, "status": "rejected"}
        except TransientError as exc:
            # Hand the job back so the retry can claim it.
            Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(status=JobStatus.PENDING)
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
        except SoftTimeLimitExceeded:
            message = f"time limit of {settings.CELERY_TASK_SOFT_TIME_LIMIT} s exceeded"
            job_finish(job_id=job_id, status=JobStatus.FAILED, message=message, error={"code": "job:app:time-limit", "message": message})
            return {"job": job_id, "status": "failed"}
        job_finish(job_id=job_id, status=JobStatus.SUCCEEDED, message="done", result=result)
        return {"job": job_id, "status": "succeeded"}

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """The last word on an unexpected crash: the job is failed with the reason."""
        if isinstance(exc, Retry) or not args:
            return
        message = f"{type(exc).__name__}: {exc}"
        logger.error("job %s failed: %s", args[0], message)
        job_finish(job_id=args[0], status=JobStatus.FAILED, message=message, error={"code": "job:app:crashed", "message": message})
