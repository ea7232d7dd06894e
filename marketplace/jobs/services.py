"""Writes for job records: create, claim, report progress, finish; and the stale-job reaper.

A job moves PENDING -> RUNNING -> one of TERMINAL_STATES. Every transition is a
conditional UPDATE so two workers that receive the same task cannot both run it.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from marketplace.core import logs
from marketplace.core.exceptions import Conflict, NotFound
from marketplace.jobs.choices import ACTIVE_STATES, TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a running job when its owner asked to cancel it."""


class Claim(enum.Enum):
    CLAIMED = "claimed"  # this worker now runs the job
    BUSY = "busy"  # another live worker runs it: try again later
    FINISHED = "finished"  # nothing to do: a duplicate delivery of a finished job


def job_create(*, kind: str, owner: Any = None, stage: str = "queued", message: str = "") -> Job:
    """Create a pending job, remembering the request that created it (its log lines carry both ids)."""
    from marketplace.core.metrics import JOBS_CREATED

    job = Job.objects.create(
        kind=kind, owner=owner, stage=stage, message=message, request_id=logs.current("request_id") or ""
    )
    logger.info("job created: %s", kind, extra={"job_id": str(job.id), "kind": kind})
    JOBS_CREATED.labels(kind).inc()
    return job


# --- durable dispatch: the job row is the outbox --------------------------------------------------
WAITING_FOR_BROKER = "queued, waiting for the broker"
# Called with the job (inside the transaction that made it terminal) to move the rows that follow it.
Finalizer = Callable[[Job], None]
_FINALIZERS: dict[str, list[Finalizer]] = {}


def job_finalizer_register(kind: str, finalizer: Finalizer) -> None:
    """Run ``finalizer(job)`` in the same transaction whenever a job of ``kind`` becomes terminal."""
    if finalizer not in _FINALIZERS.setdefault(kind, []):
        _FINALIZERS[kind].append(finalizer)


def job_enqueue(*, job: Job, task_name: str, args: list[Any] | None = None, queue: str = "default") -> Job:
    """Record how to run ``job`` (in the caller's transaction) and send it once that commits.

    Sending never raises: when the broker is down the job stays pending and undispatched,
    and ``jobs_dispatch_pending`` (beat and every worker's heartbeat) sends it later.
    """
    job.task_name, job.task_args, job.queue = task_name, [str(job.id), *(args or [])], queue
    job.save(update_fields=["task_name", "task_args", "queue", "updated_at"])
    job_id = job.id
    transaction.on_commit(lambda: job_dispatch(job_id=job_id))
    return job


def job_dispatch(*, job_id: uuid.UUID | str) -> bool:
    """Hand a pending job's task to the broker; return whether it was sent (never raises)."""
    from workers.celery import publish_task

    with logs.bound(job_id=str(job_id)):
        return _dispatch(job_id, publish_task)


def _dispatch(job_id: uuid.UUID | str, publish_task: Callable[..., None]) -> bool:
    try:
        job = Job.objects.filter(id=job_id, status=JobStatus.PENDING).exclude(task_name="").first()
        if job is None:
            return False
        Job.objects.filter(id=job_id).update(dispatched_at=timezone.now())
    except Exception:  # noqa: BLE001 - the rows are committed; the dispatcher sends it once the database is back
        logger.warning(
            "job %s: cannot mark it dispatched; the dispatcher will send it", job_id, exc_info=True
        )
        return False
    try:
        # The task id is the job id, so Celery's own lines about it name the job (docs/operations.md).
        publish_task(
            job.task_name,
            args=job.task_args,
            queue=job.queue,
            task_id=str(job.id),
            headers={"lwm_request_id": job.request_id} if job.request_id else None,
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure: the job row keeps the work
        logger.warning(
            "job %s: the broker refused the task (%s: %s); the dispatcher will send it again",
            job_id,
            type(exc).__name__,
            exc,
        )
        try:
            Job.objects.filter(id=job_id, status=JobStatus.PENDING).update(
                dispatched_at=None, message=WAITING_FOR_BROKER
            )
        except Exception:  # noqa: BLE001
            logger.warning("job %s: cannot record the failed dispatch", job_id, exc_info=True)
        return False
    logger.info(
        "job sent to the broker: %s on %s",
        job.task_name,
        job.queue,
        extra={"task": job.task_name, "queue": job.queue, "request_id": job.request_id or None},
    )
    return True


def jobs_dispatch_pending(*, limit: int = 200) -> int:
    """Send pending jobs never sent (past a short grace, so the on-commit send goes first), sent
    too long ago, or whose retry time has come; return how many were sent.

    A duplicate send is harmless: the claim lets one delivery run the job and the others skip it.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=settings.LWM_JOB_DISPATCH_GRACE_SECONDS)
    stale = now - timedelta(seconds=settings.LWM_JOB_REDISPATCH_SECONDS)
    due = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    never_sent = Q(dispatched_at__isnull=True) & (Q(retry_at__isnull=False) | Q(created_at__lt=grace))
    candidates = (
        Job.objects.filter(
            due, never_sent | Q(dispatched_at__lt=stale), status=JobStatus.PENDING, cancel_requested=False
        )
        .exclude(task_name="")
        .order_by("created_at")
        .values_list("id", "dispatched_at")[:limit]
    )
    sent = 0
    for job_id, dispatched_at in list(candidates):
        # Only one dispatcher wins each job: the update is conditional on what this one read.
        mine = Job.objects.filter(id=job_id, status=JobStatus.PENDING)
        mine = (
            mine.filter(dispatched_at=dispatched_at)
            if dispatched_at
            else mine.filter(dispatched_at__isnull=True)
        )
        if mine.update(dispatched_at=now):
            sent += job_dispatch(job_id=job_id)
    if sent:
        logger.info("dispatcher sent %d pending jobs", sent)
    return sent


def job_release_for_retry(*, job_id: uuid.UUID | str, worker: str, reason: str, part: str) -> int | None:
    """Give a running job back after a transient failure: pending again, sent by the dispatcher
    after a backoff. Returns the delay in seconds, or None when its retries are spent."""
    job = Job.objects.filter(id=job_id).only("retries").first()
    if job is None or job.retries >= settings.LWM_JOB_TRANSIENT_RETRIES:
        return None
    delay = min(
        settings.LWM_JOB_RETRY_BACKOFF_MAX_SECONDS, settings.LWM_JOB_RETRY_BACKOFF_SECONDS * 2**job.retries
    )
    now = timezone.now()
    released = Job.objects.filter(id=job_id, status=JobStatus.RUNNING, worker=worker).update(
        status=JobStatus.PENDING,
        retries=F("retries") + 1,
        retry_at=now + timedelta(seconds=delay),
        dispatched_at=None,
        stage="queued",
        message=f"{part} unavailable; retrying in {delay:.0f} s",
    )
    if released:
        _append_log(
            job_id,
            {
                "stage": "retry",
                "status": "pending",
                "message": f"{part}: {reason}"[:500],
                "at": now.isoformat(),
            },
        )
    return delay


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
    claimable = (
        Q(status=JobStatus.PENDING)
        | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
        | Q(status=JobStatus.RUNNING, heartbeat_at__isnull=True)
    )
    updated = (
        Job.objects.filter(claimable, id=job_id)
        .exclude(cancel_requested=True)
        .update(
            status=JobStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=now,
        )
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
    """Move an active job to a terminal state, and what follows it (its version) with it, in one
    transaction; return False if it already was terminal.

    This is the one function that ends a job: the task, the reaper, cancellation and the
    consistency check all call it, so a final job never leaves a non-final version behind.
    """
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
            _append_log(
                job_id,
                {"stage": "finished", "status": str(status), "message": message, "at": now.isoformat()},
            )
            job = Job.objects.get(id=job_id)
            for finalizer in _FINALIZERS.get(job.kind, []):
                finalizer(job)  # the version/submission reaches its final state with the job, or neither does
    if updated:  # once committed: a rolled-back end is neither logged nor counted
        transaction.on_commit(lambda: _finished_observed(job, error))
    return bool(updated)


def _finished_observed(job: Job, error: dict[str, Any] | None) -> None:
    """One log line and one count per job that reached its final state (whoever ended it)."""
    from marketplace.core.metrics import JOBS_FINISHED

    task = job.task_name or job.kind
    code = (error or {}).get("code")
    level = logging.INFO if job.status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED) else logging.WARNING
    logger.log(
        level,
        "job finished %s: %s",
        job.status,
        job.message,
        extra={
            "job_id": str(job.id),
            "task": task,
            "status": str(job.status),
            "error_code": code,
            "request_id": job.request_id or None,
            "attempts": job.attempts,
        },
    )
    JOBS_FINISHED.labels(task, str(job.status)).inc()


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
    limit = max_attempts if max_attempts is not None else settings.LWM_JOB_MAX_ATTEMPTS
    cutoff = timezone.now() - timedelta(seconds=settings.LWM_WORKER_STALE_SECONDS)
    stale = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).exclude(task_name="")
    counts = {"resent": 0, "failed": 0}
    for job in stale.only("id", "attempts", "task_name", "task_args", "queue"):
        if job.attempts >= limit:
            reason = f"the worker stopped {job.attempts} times while running this job"
            counts["failed"] += job_finish(
                job_id=job.id,
                status=JobStatus.FAILED,
                message=reason,
                error={"code": "job:app:worker-lost", "message": reason},
            )
            continue
        if Job.objects.filter(id=job.id, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=JobStatus.PENDING, dispatched_at=None, retry_at=None
        ):
            _append_log(
                job.id,
                {
                    "stage": "recovered",
                    "status": "pending",
                    "message": "worker lost; sent again",
                    "at": timezone.now().isoformat(),
                },
            )
            counts["resent"] += job_dispatch(job_id=job.id)
    return counts


def jobs_reap_stale(*, older_than_seconds: int | None = None) -> int:
    """Fail running jobs whose heartbeat stopped; return how many were failed."""
    seconds = older_than_seconds if older_than_seconds is not None else settings.LWM_JOB_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = list(
        Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list("id", flat=True)
    )
    reason = f"no heartbeat for more than {seconds} s: the worker stopped"
    count = 0
    for job_id in stale:
        count += job_finish(
            job_id=job_id,
            status=JobStatus.FAILED,
            message=reason,
            error={"code": "job:app:stale-heartbeat", "message": reason},
        )
    return count
