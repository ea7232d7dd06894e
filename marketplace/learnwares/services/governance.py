"""Admin decisions: approve or reject a version in review, yank a version, ban a user, purge."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace.core.exceptions import Conflict, ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import Learnware, LearnwareVersion, Specification
from marketplace.learnwares.services.audit import audit_record
from marketplace.learnwares.services.versions import version_file_delete, version_reject


def _need_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ValidationFailed(
            "field 'reason' is required", code="review:user:reason-missing", details={"reason": "required"}
        )
    return reason.strip()


def version_approve(*, version: LearnwareVersion, actor: Any, note: str = "") -> LearnwareVersion:
    """pending_review -> published, then into the index."""
    from marketplace.search.services import index_add

    with transaction.atomic():
        updated = LearnwareVersion.objects.filter(id=version.id, status=VersionStatus.PENDING_REVIEW).update(
            status=VersionStatus.PUBLISHED, published_at=timezone.now(), reviewed_by=actor, review_note=note
        )
        if not updated:
            raise Conflict(
                f"version {version} is {version.status}, not pending review", code="review:user:not-pending"
            )
        version.refresh_from_db()
        audit_record(action="version.approved", actor=actor, version=version, note=note)
    spec = Specification.objects.filter(version=version).first()
    if spec is not None:  # a base model has no specification: nothing to index
        index_add(specification=spec)
    return version


def version_review_reject(*, version: LearnwareVersion, actor: Any, reason: str) -> LearnwareVersion:
    """pending_review -> rejected with the reviewer's reason; the package file is deleted."""
    reason = _need_reason(reason)
    if version.status != VersionStatus.PENDING_REVIEW:
        raise Conflict(
            f"version {version} is {version.status}, not pending review", code="review:user:not-pending"
        )
    LearnwareVersion.objects.filter(id=version.id).update(reviewed_by=actor, review_note=reason)
    version_reject(
        version=version,
        actor=actor,
        reasons=[{"code": "review:user:rejected", "message": reason, "details": {}}],
    )
    version.refresh_from_db()
    return version


def version_yank(*, version: LearnwareVersion, actor: Any, reason: str) -> LearnwareVersion:
    """published -> yanked: no longer downloadable nor found; the row and file stay for audit."""
    from marketplace.search.services import index_remove

    reason = _need_reason(reason)
    updated = LearnwareVersion.objects.filter(id=version.id, status=VersionStatus.PUBLISHED).update(
        status=VersionStatus.YANKED, yanked_at=timezone.now(), yank_reason=reason
    )
    if not updated:
        raise Conflict(
            f"version {version} is {version.status}, not published", code="review:user:not-published"
        )
    version.refresh_from_db()
    index_remove(version=version)
    audit_record(action="version.yanked", actor=actor, version=version, reason=reason)
    return version


def user_ban(*, user: Any, actor: Any, reason: str) -> Any:
    """Deactivate a user and reject their versions still waiting for checks or review."""
    reason = _need_reason(reason)
    type(user).objects.filter(pk=user.pk).update(is_active=False, ban_reason=reason)
    waiting = LearnwareVersion.objects.filter(
        learnware__owner=user,
        status__in=(VersionStatus.UPLOADED, VersionStatus.VALIDATING, VersionStatus.PENDING_REVIEW),
    )
    for version in waiting:
        version_reject(
            version=version,
            actor=actor,
            reasons=[{"code": "review:user:owner-banned", "message": reason, "details": {}}],
        )
    audit_record(
        action="user.banned", actor=actor, user_id=user.pk, username=user.get_username(), reason=reason
    )
    user.refresh_from_db()
    return user


def learnware_purge(*, learnware: Learnware, actor: Any) -> None:
    """Hard-delete a soft-deleted learnware: files, versions, specs (audit rows stay)."""
    if learnware.deleted_at is None:
        raise Conflict("only a deleted learnware can be purged", code="review:user:not-deleted")
    for version in learnware.versions.all():
        version_file_delete(version=version)
    audit_record(
        action="learnware.purged", actor=actor, learnware=None, name=learnware.name, learnware_id=learnware.id
    )
    learnware.delete()
