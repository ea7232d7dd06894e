"""Writes for job records: create, claim, report progress, finish; and the stale-job reaper.

A job moves PENDING -> RUNNING -> one of TERMINAL_STATES. Every transition is a
conditional UPDATE so two workers that receive the same task cannot both run it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from marketplace.core.exceptions import Conflict, NotFound
from marketplace.jobs.choices import ACTIVE_STATES, TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job


class JobCancelled(Exception):
    """Raised inside a running job when its owner asked to cancel it."""


class Claim(enum.Enum):
    CLAIMED = "claimed"  # this worker now runs the job
    BUSY = "busy"  # another live worker runs it: try again later
    FINISHED = "finished"  # nothing to do: a duplicate delivery of a finished job


def job_create(*, kind: str, owner: Any = None, stage: str = "queued", message: str = "") -> Job:
    """Create a pending job."""
    return Job.objects.create(kind=kind, owner=owner, stage=stage, message=message)


def job_enqueue(*, job: Job, task_name: str, args: list[Any] | None = None, queue: str = "default") -> Job:
    """Record how to run ``job`` and send it to ``queue`` once the transaction commits."""
    from workers.celery import send_task_on_commit

    job.task_name, job.task_args, job.queue = task_name, [str(job.id), *(args or [])], queue
    job.save(update_fields=["task_name", "task_args", "queue", "updated_at"])
    send_task_on_commit(task_name, args=job.task_args, queue=queue)
    return job


def _append_log(job_id: uuid.UUID | str, entry: dict[str, Any]) -> None:
    job = Job.objects.only("log").get(id=job_id)
    Job.objects.filter(id=job_id).update(log=[*job.log, entry])


def job_claim(*, job_id: uuid.UUID | str, worker: str) -> Claim:
    """Claim a job for ``worker``; take over a running job whose worker stopped beating.

    A redelivered task (its worker was killed) finds the job RUNNING with a stale
    heartbeat and takes it over; a duplicate of a live job gets BUSY and retries later.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.LWM_WORKER_STALE_SECONDS)
    claimable = Q(status=JobStatus.PENDING) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before) | Q(
        status=JobStatus.RUNNING, heartbeat_at__isnull=True
    )
    updated = (
        Job.objects.filter(claimable, id=job_id)
        .exclude(cancel_requested=True)
        .update(status=JobStatus.RUNNING, worker=worker, heartbeat_at=now, attempts=F("attempts") + 1, started_at=now)
    )
    if updated == 1:
        return Claim.CLAIMED
    job = Job.objects.filter(id=job_id).only("status", "cancel_requested").first()
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    if job.status in ACTIVE_STATES and job.cancel_requested:
        job_finish(job_id=job_id, status=JobStatus.CANCELLED, message="cancelled before it started")
        return Claim.FINISHED
    return Claim.FINISHED if job.status in TERMINAL_STATES else Claim.BUSY


def job_heartbeat(*, job_id: uuid.UUID | str, worker: str) -> bool:
    """Refresh the heartbeat; return whether cancellation was requested."""
    Job.objects.filter(id=job_id, status=JobStatus.RUNNING, worker=worker).update(heartbeat_at=timezone.now())
    return Job.objects.filter(id=job_id, cancel_requested=True).exists()


def job_progress(*, job_id: uuid.UUID | str, stage: str, progress: int, message: str = "") -> None:
    """Record the current stage and progress (0-100). Raises JobCancelled if cancelled."""
    now = timezone.now()
    previous = Job.objects.filter(id=job_id).values_list("stage", "cancel_requested").first()
    if previous is None:
        raise NotFound(f"job {job_id} does not exist")
    if previous[1]:
        raise JobCancelled(f"job {job_id} was cancelled")
    progress = max(0, min(100, int(progress)))
    Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(
        stage=stage, progress=progress, message=message, heartbeat_at=now
    )
    if previous[0] != stage or message:
        _append_log(job_id, {"stage": stage, "status": "running", "message": message, "at": now.isoformat()})


def job_finish(
    *,
    job_id: uuid.UUID | str,
    status: JobStatus,
    message: str = "",
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Move an active job to a terminal state; return False if it already was terminal."""
    if status not in TERMINAL_STATES:
        raise ValueError(f"{status} is not a terminal state")
    now = timezone.now()
    fields: dict[str, Any] = {"status": status, "message": message, "finished_at": now, "heartbeat_at": now}
    if status == JobStatus.SUCCEEDED:
        fields["progress"] = 100
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    with transaction.atomic():
        updated = Job.objects.filter(id=job_id, status__in=ACTIVE_STATES).update(**fields)
    if updated:
        _append_log(job_id, {"stage": "finished", "status": str(status), "message": message, "at": now.isoformat()})
    return bool(updated)


def job_cancel(*, job_id: uuid.UUID | str, user: Any) -> Job:
    """Ask a job to stop; a pending job is cancelled at once, a running one at its next report."""
    job = Job.objects.filter(id=job_id).first()
    if job is None or (job.owner_id != user.id and not user.is_staff):
        raise NotFound(f"job {job_id} not found")
    if job.is_terminal:
        raise Conflict(f"job {job_id} already {job.status}", code="job:user:already-finished")
    Job.objects.filter(id=job_id).update(cancel_requested=True)
    if job.status == JobStatus.PENDING:
        job_finish(job_id=job_id, status=JobStatus.CANCELLED, message="cancelled by the user")
    job.refresh_from_db()
    return job


def jobs_recover_stale(*, max_attempts: int | None = None) -> dict[str, int]:
    """Send again the jobs whose worker stopped beating; fail those out of attempts.

    This makes a killed worker's job resumable on every transport (the filesystem one
    never redelivers); the conditional UPDATE lets only one recoverer resend each job.
    """
    from workers.celery import app

    limit = max_attempts if max_attempts is not None else settings.LWM_JOB_MAX_ATTEMPTS
    cutoff = timezone.now() - timedelta(seconds=settings.LWM_WORKER_STALE_SECONDS)
    stale = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).exclude(task_name="")
    counts = {"resent": 0, "failed": 0}
    for job in stale.only("id", "attempts", "task_name", "task_args", "queue"):
        if job.attempts >= limit:
            reason = f"the worker stopped {job.attempts} times while running this job"
            counts["failed"] += job_finish(
                job_id=job.id, status=JobStatus.FAILED, message=reason, error={"code": "job:app:worker-lost", "message": reason}
            )
            continue
        if Job.objects.filter(id=job.id, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(status=JobStatus.PENDING):
            _append_log(job.id, {"stage": "recovered", "status": "pending", "message": "worker lost; sent again", "at": timezone.now().isoformat()})
            app.send_task(job.task_name, args=job.task_args, queue=job.queue)
            counts["resent"] += 1
    return counts


def jobs_reap_stale(*, older_than_seconds: int | None = None) -> int:
    """Fail running jobs whose heartbeat stopped; return how many were failed."""
    seconds = older_than_seconds if older_than_seconds is not None else settings.LWM_JOB_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = list(Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list("id", flat=True))
    reason = f"no heartbeat for more than {seconds} s: the worker stopped"
    count = 0
    for job_id in stale:
        count += job_finish(
            job_id=job_id, status=JobStatus.FAILED, message=reason, error={"code": "job:app:stale-heartbeat", "message": reason}
        )
    return count
