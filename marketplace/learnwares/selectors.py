"""Reads of learnwares and versions, always scoped by what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from marketplace.core.exceptions import NotFound
from marketplace.learnwares.choices import Modality, VersionStatus
from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion


def _can_see_unpublished(user: Any, learnware: Learnware) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or learnware.owner_id == user.id))


def learnware_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[Learnware]:
    """Learnwares the user may see: with a published version, or their own (any state)."""
    filters = filters or {}
    qs = Learnware.objects.visible_to(user).select_related("owner", "feature_space", "base_model")
    if not (user and user.is_authenticated and user.is_staff):
        mine = {"owner": user} if user and user.is_authenticated else None
        published = qs.filter(versions__status=VersionStatus.PUBLISHED)
        qs = (published | qs.filter(**mine)) if mine else published
    for key in ("kind", "modality", "task"):
        if filters.get(key):
            qs = qs.filter(**{key: filters[key]})
    if filters.get("owner"):
        qs = qs.filter(owner__username=filters["owner"])
    return qs.distinct().order_by("-created_at")


def learnware_get(*, user: Any, learnware_id: int) -> Learnware:
    """One visible learnware, or NotFound (never reveals that a private one exists)."""
    lw = learnware_list(user=user).filter(id=learnware_id).first()
    if lw is None:
        raise NotFound(f"learnware {learnware_id} not found", code="learnware:user:not-found")
    return lw


def version_list(*, user: Any, learnware: Learnware) -> QuerySet[LearnwareVersion]:
    """Published and yanked versions; the owner and staff also see pending and rejected ones."""
    qs = learnware.versions.select_related("job").order_by("-number")
    if _can_see_unpublished(user, learnware):
        return qs
    return qs.filter(status__in=(VersionStatus.PUBLISHED, VersionStatus.YANKED))


def version_get(*, user: Any, learnware: Learnware, number: int) -> LearnwareVersion:
    version = version_list(user=user, learnware=learnware).filter(number=number).first()
    if version is None:
        raise NotFound(
            f"version {number} of learnware {learnware.id} not found", code="learnware:user:not-found"
        )
    return version


def version_downloadable(*, user: Any, learnware: Learnware, number: int) -> LearnwareVersion:
    """A version whose package may be downloaded: published (owner/staff: also in review)."""
    version = version_get(user=user, learnware=learnware, number=number)
    allowed = [VersionStatus.PUBLISHED]
    if _can_see_unpublished(user, learnware):
        allowed.append(VersionStatus.PENDING_REVIEW)
    if version.status not in allowed or not version.package:
        raise NotFound(
            f"version {number} is {version.status}: nothing to download",
            code="download:user:not-downloadable",
        )
    return version


def feature_space_list(*, user: Any) -> QuerySet[FeatureSpace]:
    """Spaces the user may see: every encoder space (image, text: nothing in them comes from an
    upload) and each table space one of the learnwares they may see lives in. A table space holds
    its first uploader's column names and the standardisation fitted on their rows, so a space
    created by a private or unpublished upload stays as private as that learnware."""
    visible = learnware_list(user=user).order_by().values("feature_space_id")
    return FeatureSpace.objects.filter(Q(id__in=visible) | ~Q(kind=Modality.TABLE)).order_by("key")


def feature_space_get(*, user: Any, key: str) -> FeatureSpace:
    """One visible space, or NotFound (never reveals that a private one exists)."""
    space = feature_space_list(user=user).filter(key=key).first()
    if space is None:
        raise NotFound(f"feature space {key!r} not found", code="learnware:user:not-found")
    return space
