"""A version's life in the publish pipeline: start, store the spec, publish / review / reject."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.conf import review_required
from marketplace.learnwares.models import FeatureSpace, LearnwareVersion, Specification
from marketplace.learnwares.services.audit import audit_record


def _transition(version: LearnwareVersion, allowed: tuple[str, ...], status: str, **fields: Any) -> bool:
    """Conditional UPDATE, so a redelivered task cannot move a version twice."""
    updated = LearnwareVersion.objects.filter(id=version.id, status__in=allowed).update(
        status=status, updated_at=timezone.now(), **fields
    )
    version.refresh_from_db()
    return bool(updated)


def version_start(*, version: LearnwareVersion) -> None:
    """Mark an uploaded version as being checked (idempotent)."""
    if _transition(version, (VersionStatus.UPLOADED,), VersionStatus.VALIDATING):
        audit_record(action="version.validating", version=version)


def version_check(*, version: LearnwareVersion, check: str, ok: bool, message: str = "") -> None:
    """Record the outcome of one check in the log shown to the owner and reviewers."""
    checks = [c for c in version.checks if c.get("check") != check]
    checks.append({"check": check, "ok": ok, "message": message, "at": timezone.now().isoformat()})
    LearnwareVersion.objects.filter(id=version.id).update(checks=checks)
    version.checks = checks


def version_file_delete(*, version: LearnwareVersion) -> None:
    """Remove the version's stored package (a rejected or purged upload leaves no file)."""
    if version.package and version.package.name:
        version.package.storage.delete(version.package.name)
    LearnwareVersion.objects.filter(id=version.id).update(package="")
    version.package.name = ""


def version_reject(*, version: LearnwareVersion, reasons: list[dict[str, Any]], actor: Any = None) -> bool:
    """Reject with every reason ({code, message, details}) and delete the stored package."""
    active = (VersionStatus.UPLOADED, VersionStatus.VALIDATING, VersionStatus.PENDING_REVIEW)
    if not _transition(version, active, VersionStatus.REJECTED, rejection_reasons=reasons):
        return False
    version_file_delete(version=version)
    audit_record(action="version.rejected", actor=actor, version=version, reasons=reasons)
    return True


def specification_store(
    *,
    version: LearnwareVersion,
    space: FeatureSpace,
    rkme: dict[str, Any],
    k: int,
    self_term: float,
    sketch: bytes,
    computed_from: str,
) -> Specification:
    """Store the version's RKME and sketch once (a second call returns the first row)."""
    spec, _ = Specification.objects.get_or_create(
        version=version,
        defaults={
            "feature_space": space,
            "rkme": rkme,
            "k": k,
            "self_term": self_term,
            "sketch": sketch,
            "computed_from": computed_from,
        },
    )
    if version.learnware.feature_space_id != space.id:
        type(version.learnware).objects.filter(id=version.learnware_id).update(feature_space=space)
    return spec


def version_complete(*, version: LearnwareVersion) -> str:
    """End the checks: published (and indexed) or pending review; returns the new status."""
    from marketplace.search.services import index_add

    if review_required():
        if _transition(version, (VersionStatus.VALIDATING,), VersionStatus.PENDING_REVIEW):
            audit_record(action="version.pending_review", version=version)
        return version.status
    with transaction.atomic():
        if _transition(
            version, (VersionStatus.VALIDATING,), VersionStatus.PUBLISHED, published_at=timezone.now()
        ):
            audit_record(action="version.published", version=version)
    # A base model has no specification (no RKME): it is listed from its rows, not indexed.
    spec = Specification.objects.filter(version=version).first()
    if version.status == VersionStatus.PUBLISHED and spec is not None:
        index_add(specification=spec)
    return version.status


NON_FINAL_VERSION_STATES = (VersionStatus.UPLOADED, VersionStatus.VALIDATING)


def version_follow_job(job: Any) -> None:
    """Finalizer of publish jobs (runs inside ``job_finish``'s transaction): a version whose job
    failed, was rejected or cancelled is rejected with the job's reason, never left validating.

    The package is deleted after the commit; if storage is down then, the row keeps pointing at
    the file and ``check_consistency`` deletes it later (never a row pointing at nothing).
    """
    from marketplace.jobs.choices import JobStatus

    if job.status == JobStatus.SUCCEEDED:
        return
    error = job.error or {"code": f"job:app:{job.status}", "message": job.message}
    if job.status == JobStatus.CANCELLED:
        error = {"code": "publish:user:cancelled", "message": job.message or "cancelled by the user"}
    reason = {
        "code": error.get("code", "job:app:failed"),
        "message": error.get("message", ""),
        "details": error.get("details") or {},
    }
    for version in LearnwareVersion.objects.select_for_update().filter(
        job_id=job.id, status__in=NON_FINAL_VERSION_STATES
    ):
        if _transition(version, NON_FINAL_VERSION_STATES, VersionStatus.REJECTED, rejection_reasons=[reason]):
            audit_record(action="version.rejected", version=version, reasons=[reason])
            transaction.on_commit(partial(version_file_delete_quietly, version=version))


def version_file_delete_quietly(*, version: LearnwareVersion) -> bool:
    """Delete a final version's package; on a storage error leave the row pointing at it (retried later)."""
    import logging

    try:
        version_file_delete(version=version)
    except Exception:  # noqa: BLE001 - storage down: check_consistency deletes it once storage is back
        logging.getLogger(__name__).warning(
            "version %s: cannot delete its package now", version.id, exc_info=True
        )
        return False
    return True
