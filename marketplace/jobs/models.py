from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from marketplace.core.models import TimeStampedModel
from marketplace.jobs.choices import TERMINAL_STATES, JobStatus


class Job(TimeStampedModel):
    """One background flow (a publish, a submission, an index rebuild) and its progress."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=50, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True
    )
    stage = models.CharField(max_length=50, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    # Per-stage log the portal shows: [{"stage", "status", "message", "at"}].
    log = models.JSONField(default=list, blank=True)
    error = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What to send again if the worker running it dies (any transport, even one without redelivery).
    task_name = models.CharField(max_length=100, blank=True)
    task_args = models.JSONField(default=list, blank=True)
    queue = models.CharField(max_length=50, default="default")
    # The job row is the outbox: when the task was last handed to the broker (null: not yet),
    # and when a pending job may be sent again after a transient failure (null: at once).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)  # transient failures retried so far
    # The X-Request-ID of the request that created the job: the worker's log lines carry it too.
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["status", "dispatched_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "status": self.status,
            "stage": self.stage,
            "progress": self.progress,
            "message": self.message,
            "error": self.error,
        }


class WorkerHeartbeat(models.Model):
    """A live Celery worker; a row older than LWM_WORKER_STALE_SECONDS means the worker is down."""

    hostname = models.CharField(max_length=200, primary_key=True)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.hostname


class IdempotencyRecord(TimeStampedModel):
    """A job-creating POST that carried an ``Idempotency-Key``: its answer, replayed on a retry.

    The row commits in the same transaction as the rows the request created, so a retried POST
    finds either nothing (the first attempt rolled back: run it) or the whole answer.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100)  # e.g. "upload", "submission"
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, blank=True)  # sha256 of the request's identifying content
    status_code = models.PositiveSmallIntegerField(default=0)
    body = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "scope", "key"], name="jobs_idempotency_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
