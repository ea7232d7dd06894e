"""Writes for submissions: create (limits, private storage, enqueue), cancel, per-stage results,
the package, and deletion of data past the retention period."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.core.exceptions import Conflict, RateLimited, ValidationFailed
from marketplace.jobs.choices import ACTIVE_STATES, TERMINAL_STATES
from marketplace.jobs.models import Job
from marketplace.jobs.services import job_cancel, job_create, job_enqueue
from marketplace.learnwares.services.counters import learnwares_reused
from marketplace.submissions import conf
from marketplace.submissions.choices import STAGES, DataFormat
from marketplace.submissions.image_data import IMAGES
from marketplace.submissions.models import Submission

logger = logging.getLogger(__name__)

TASK_NAME = "submissions.run"
_SUFFIXES: dict[str, str] = {
    DataFormat.RKME: "json",
    IMAGES: "zip",
}  # stored file suffix of a data format, where they differ
JOB_KIND = "submission"


def _sha256_and_size(handle: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def _check_size(size: int, field: str) -> None:
    limit = conf.max_bytes()
    if size > limit:
        raise ValidationFailed(
            f"{field}: {size} bytes exceed the limit of {limit} bytes per file",
            code="submission:user:too-large",
            details={field: [f"at most {limit} bytes"]},
            http_status=413,
        )


def _check_active_limit(owner: Any) -> None:
    # Serialise one user's creations so two parallel requests cannot both slip under the limit.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = Job.objects.filter(kind=JOB_KIND, owner=owner, status__in=ACTIVE_STATES).count()
    limit = conf.max_active()
    if active >= limit:
        retry = conf.retry_after_seconds()
        raise RateLimited(
            f"you have {active} submissions in progress (limit {limit}); try again when one finishes",
            code="submission:user:too-many-active",
            details={"retry_after": retry, "active": active, "limit": limit},
        )


def submission_create(
    *,
    owner: Any,
    data_format: str,
    data: File | None = None,
    rkme_json: str | None = None,
    labelled: File | None = None,
    labelled_format: str = "",
    requirements: dict[str, Any] | None = None,
    modality: str = "table",
    task: str = "classification",
    name: str = "",
) -> Submission:
    """Store the user's files privately, create the submission and its job, enqueue the pipeline.

    Raises
    ------
    RateLimited
        The owner already has the maximum of active submissions (``details.retry_after``).
    ValidationFailed
        A file is over the size limit (HTTP 413), or neither data nor an RKME was given.
    """
    if data_format == DataFormat.RKME:
        if not rkme_json:
            raise ValidationFailed(
                "rkme: the RKME JSON is required with data_format 'rkme'", code="submission:user:missing-data"
            )
        data = ContentFile(rkme_json.encode(), name="rkme.json")
    if data is None:
        raise ValidationFailed(
            "data: a data file or an RKME is required", code="submission:user:missing-data"
        )
    data_sha, data_size = _sha256_and_size(data)
    _check_size(data_size, "data")
    labelled_sha, labelled_size = _sha256_and_size(labelled) if labelled is not None else ("", 0)
    _check_size(labelled_size, "labelled")
    with transaction.atomic():
        _check_active_limit(owner)
        job = job_create(kind=JOB_KIND, owner=owner, stage="queued", message="waiting for a worker")
        submission = Submission.objects.create(
            owner=owner,
            name=name,
            job=job,
            modality=modality,
            task=task,
            requirements=requirements or {},
            data_format=data_format,
            data_sha256=data_sha,
            data_size=data_size,
            labelled_format=labelled_format if labelled is not None else "",
            labelled_sha256=labelled_sha,
            labelled_size=labelled_size,
        )
        submission.data_file.save(f"data.{_SUFFIXES.get(data_format, data_format)}", data, save=False)
        if labelled is not None:
            submission.labelled_file.save(
                f"labelled.{_SUFFIXES.get(labelled_format, labelled_format)}", labelled, save=False
            )
        submission.save(update_fields=["data_file", "labelled_file", "updated_at"])
        job_enqueue(job=job, task_name=TASK_NAME, args=[str(submission.id)], queue="compute")
    return submission


def submission_cancel(*, submission: Submission, user: Any) -> Submission:
    """Ask the submission's job to stop (at once if pending, at the next stage report if running).

    Raises
    ------
    Conflict
        The submission already finished.
    """
    if submission.job_id is None:
        raise Conflict(f"submission {submission.id} has no job to cancel", code="submission:user:not-running")
    job_cancel(job_id=submission.job_id, user=user)
    submission.refresh_from_db()
    return submission


def submission_stage_save(*, submission_id: Any, stage: str, result: dict[str, Any]) -> Submission:
    """Store one stage's result (it must carry its input ``key``), replacing that stage only."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    if "key" not in result:
        raise ValueError("a stage result must carry the 'key' of its inputs")
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(id=submission_id)
        submission.results = {**submission.results, stage: result}
        submission.save(update_fields=["results", "updated_at"])
    return submission


def submission_feature_space_set(*, submission_id: Any, feature_space: Any) -> None:
    """Record the feature space the spec stage resolved or inferred."""
    Submission.objects.filter(id=submission_id).update(feature_space=feature_space, updated_at=timezone.now())


def submission_package_save(
    *, submission_id: Any, content: bytes, filename: str = "package.zip"
) -> Submission:
    """Store the assembled package (idempotent: the same bytes are not written twice)."""
    sha = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(id=submission_id)
        if submission.package_sha256 == sha and submission.package:
            return submission
        old = submission.package.name if submission.package else ""
        submission.package.save(filename, ContentFile(content), save=False)
        first = not old
        submission.package_sha256, submission.package_size = sha, len(content)
        submission.save(update_fields=["package", "package_sha256", "package_size", "updated_at"])
        if first:  # a retried package stage must not count the same task twice
            members = (submission.results.get("assemble") or {}).get("members") or []
            learnwares_reused(version_ids=[m["version_id"] for m in members if "version_id" in m])
    if old and old != submission.package.name:
        submission.package.storage.delete(old)
    return submission


def submission_delete_data(*, submission: Submission) -> Submission:
    """Delete the user's data files, labelled sample, package and work files; keep the results."""
    storage = submission.data_file.storage
    for field in (submission.data_file, submission.labelled_file, submission.package):
        if field and field.name:
            storage.delete(field.name)
    prefix = f"submissions/{submission.owner_id}/{submission.id}/work"
    try:
        _, files = storage.listdir(prefix)
    except (FileNotFoundError, NotImplementedError):
        files = []
    for name in files:
        storage.delete(f"{prefix}/{name}")
    Submission.objects.filter(id=submission.id).update(
        data_file="", labelled_file="", package="", data_deleted_at=timezone.now(), updated_at=timezone.now()
    )
    submission.refresh_from_db()
    return submission


def submissions_purge_expired(*, now: Any = None, retention_days: int | None = None) -> int:
    """Delete the data of finished submissions older than the retention period; return how many."""
    days = retention_days if retention_days is not None else conf.retention_days()
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = Q(job__status__in=TERMINAL_STATES) | Q(job__isnull=True)
    expired = Submission.objects.filter(finished, created_at__lt=cutoff, data_deleted_at__isnull=True)
    count = 0
    for submission in expired.iterator():
        submission_delete_data(submission=submission)
        count += 1
    if count:
        logger.info("deleted the data of %d submissions older than %d days", count, days)
    return count
