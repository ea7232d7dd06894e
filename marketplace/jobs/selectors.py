from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from marketplace.jobs.models import Job, WorkerHeartbeat


def job_get_visible(*, job_id: uuid.UUID | str, user: Any) -> Job | None:
    """A job its owner or staff may read; None for anyone else (not even its existence leaks)."""
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        return None
    if user.is_authenticated and (user.is_staff or job.owner_id == user.id):
        return job
    return None


def workers_alive() -> QuerySet[WorkerHeartbeat]:
    cutoff = timezone.now() - timedelta(seconds=settings.LWM_WORKER_STALE_SECONDS)
    return WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff)
