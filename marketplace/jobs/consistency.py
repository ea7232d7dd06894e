"""Find and repair drift between jobs, the rows that follow them, and stored files.

Each finding names a kind and an example; ``repair=True`` fixes what can be fixed safely:
a version left non-final behind a final job is finalized (``job_finish``'s finalizer), a
pending job the broker never got is sent, a rejected version's leftover file is deleted, an
object no row points at (older than ``min_age_seconds``, so uploads in flight are spared) is
deleted, and a non-final version whose package is missing is failed with
``job:infra:package-missing``. A published version whose package is missing is only reported:
an operator restores it from backup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils import timezone

from marketplace.jobs.choices import TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job
from marketplace.jobs.services import job_finish, jobs_dispatch_pending

logger = logging.getLogger(__name__)
VERSION_PREFIX = "learnwares"
SUBMISSION_PREFIX = "submissions"


@dataclass
class ConsistencyReport:
    findings: dict[str, list[str]] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    def found(self, kind: str, example: str) -> None:
        self.findings.setdefault(kind, []).append(example)

    def fixed(self, kind: str, count: int = 1) -> None:
        self.repaired[kind] = self.repaired.get(kind, 0) + count

    def counts(self) -> dict[str, int]:
        return {
            **{f"found:{k}": len(v) for k, v in self.findings.items()},
            **{f"repaired:{k}": n for k, n in self.repaired.items()},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": {k: {"count": len(v), "examples": v[:10]} for k, v in self.findings.items()},
            "repaired": self.repaired,
        }


def _walk(storage: Storage, prefix: str) -> Iterator[str]:
    try:
        dirs, files = storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{prefix}/{name}"
    for sub in dirs:
        yield from _walk(storage, f"{prefix}/{sub}")


def _older_than(storage: Storage, name: str, cutoff: Any) -> bool:
    try:
        return storage.get_modified_time(name) < cutoff
    except (NotImplementedError, FileNotFoundError):
        return True


def _versions_behind_jobs(report: ConsistencyReport, repair: bool) -> None:
    from marketplace.learnwares.models import LearnwareVersion
    from marketplace.learnwares.services.versions import NON_FINAL_VERSION_STATES, version_follow_job

    behind = LearnwareVersion.objects.filter(
        status__in=NON_FINAL_VERSION_STATES, job__status__in=TERMINAL_STATES
    )
    for version in behind.select_related("job"):
        report.found(
            "version-non-final-behind-final-job",
            f"version {version.id} {version.status}, job {version.job_id} "
            f"{version.job.status if version.job else None}",
        )
        if repair:
            with transaction.atomic():
                version_follow_job(version.job)
            report.fixed("version-non-final-behind-final-job")
    for version in LearnwareVersion.objects.filter(status__in=NON_FINAL_VERSION_STATES, job__isnull=True):
        report.found("version-non-final-without-job", f"version {version.id} {version.status}")


def _undispatched_jobs(report: ConsistencyReport, repair: bool) -> None:
    from django.conf import settings

    cutoff = timezone.now() - timedelta(seconds=settings.LWM_JOB_DISPATCH_GRACE_SECONDS)
    waiting = Job.objects.filter(
        status=JobStatus.PENDING, dispatched_at__isnull=True, retry_at__isnull=True, created_at__lt=cutoff
    )
    for job_id in waiting.exclude(task_name="").values_list("id", flat=True):
        report.found("job-pending-never-sent", f"job {job_id}")
    if repair and report.findings.get("job-pending-never-sent"):
        report.fixed("job-pending-never-sent", jobs_dispatch_pending())


def _version_files(report: ConsistencyReport, repair: bool, storage: Storage, min_age: timedelta) -> None:
    from marketplace.learnwares.choices import VersionStatus
    from marketplace.learnwares.models import LearnwareVersion
    from marketplace.learnwares.services.versions import NON_FINAL_VERSION_STATES, version_file_delete_quietly

    known: set[str] = set()
    for version in LearnwareVersion.objects.exclude(package="").select_related("job"):
        name = version.package.name or ""  # never empty: the query excludes those
        known.add(name)
        if version.status == VersionStatus.REJECTED:
            report.found("rejected-version-with-file", name)
            if repair and version_file_delete_quietly(version=version):
                report.fixed("rejected-version-with-file")
            continue
        if storage.exists(name):
            continue
        report.found("row-without-object", f"version {version.id} ({version.status}) -> {name}")
        if repair and version.status in NON_FINAL_VERSION_STATES and version.job_id:
            message = f"the stored package {name} is missing"
            job_finish(
                job_id=version.job_id,
                status=JobStatus.FAILED,
                message=message,
                error={
                    "code": "job:infra:package-missing",
                    "message": message,
                    "details": {"part": "storage"},
                },
            )
            report.fixed("row-without-object")
    cutoff = timezone.now() - min_age
    for name in _walk(storage, VERSION_PREFIX):
        if name in known:
            continue
        report.found("object-without-row", name)
        if repair and _older_than(storage, name, cutoff):
            storage.delete(name)
            report.fixed("object-without-row")


def _submission_files(report: ConsistencyReport, repair: bool, storage: Storage, min_age: timedelta) -> None:
    from marketplace.submissions.models import Submission

    live = {str(sid) for sid in Submission.objects.values_list("id", flat=True)}
    cutoff = timezone.now() - min_age
    for name in _walk(storage, SUBMISSION_PREFIX):
        parts = name.split("/")
        if len(parts) >= 4 and parts[2] in live:
            continue
        report.found("object-without-row", name)
        if repair and _older_than(storage, name, cutoff):
            storage.delete(name)
            report.fixed("object-without-row")
    for sub in Submission.objects.filter(data_deleted_at__isnull=True).exclude(data_file=""):
        if not storage.exists(sub.data_file.name or ""):
            report.found("row-without-object", f"submission {sub.id} -> {sub.data_file.name}")


def consistency_check(
    *, repair: bool = True, files: bool = True, min_age_seconds: float = 3600.0
) -> ConsistencyReport:
    """Check (and with ``repair``, fix) jobs, versions, submissions and stored files."""
    report = ConsistencyReport()
    _versions_behind_jobs(report, repair)
    _undispatched_jobs(report, repair)
    if files:
        storage = storages["default"]
        min_age = timedelta(seconds=min_age_seconds)
        _version_files(report, repair, storage, min_age)
        _submission_files(report, repair, storage, min_age)
    if report.findings:
        logger.warning("consistency check: %s", report.counts())
    return report
