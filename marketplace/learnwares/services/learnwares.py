"""Writes on learnwares: upload a package (a new learnware or a new version), edit the card, delete."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from marketplace.accounts.models import Organization
from marketplace.core.exceptions import (
    ApplicationError,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from marketplace.jobs.models import Job
from marketplace.jobs.services import job_create, job_enqueue
from marketplace.learnwares.choices import Kind, Visibility
from marketplace.learnwares.conf import zip_limits
from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.learnwares.packages import Package, package_inspect
from marketplace.learnwares.services.audit import audit_record
from marketplace.learnwares.services.model_bases import same_base
from marketplace.learnwares.services.registered import MINILM_KEY
from marketplace.learnwares.services.spaces import base_model_for
from specs.packaging.zipsafe import ZipLimits

logger = logging.getLogger(__name__)

CARD_FIELDS = ("description", "tags", "license")


def _organization(manifest: dict[str, Any], user: Any) -> Organization | None:
    if manifest["visibility"] != Visibility.ORGANIZATION:
        return None
    org = Organization.objects.filter(slug=manifest["organization"], members=user).first()
    if org is None:
        raise ValidationFailed(
            f"field 'organization': you are not a member of {manifest['organization']!r}",
            code="upload:user:manifest-field",
            details={"organization": "not a member"},
        )
    return org


def _learnware_for(
    user: Any, manifest: dict[str, Any], package: Package, learnware: Learnware | None
) -> Learnware:
    base = base_model_for(
        manifest=manifest, adapter_config=_adapter_config(package), user=user
    )  # the package itself first
    slug = slugify(manifest["name"])[:140] or "learnware"
    if learnware is None:
        learnware = (
            Learnware.objects.select_for_update()
            .filter(owner=user, slug=slug, deleted_at__isnull=True)
            .first()
        )
    elif learnware.owner_id != user.id or learnware.deleted_at is not None:
        raise NotFound(f"learnware {learnware.id} not found")
    card = {
        "description": manifest["description"],
        "tags": manifest["tags"],
        "license": manifest["license"],
        "visibility": manifest["visibility"],
        "organization": _organization(manifest, user),
    }
    if learnware is None:
        if Learnware.objects.filter(owner=user, slug=slug).exists():
            raise Conflict(
                f"a deleted learnware named {manifest['name']!r} still exists; ask an admin to purge it",
                code="upload:user:name-taken",
            )
        return Learnware.objects.create(
            owner=user,
            name=manifest["name"],
            slug=slug,
            kind=manifest["kind"],
            modality=manifest["modality"],
            task=manifest["task"],
            base_model=base,
            **card,
        )
    for key in ("kind", "modality", "task"):
        if getattr(learnware, key) != manifest[key]:
            raise Conflict(
                f"field '{key}': a new version must keep {key} {getattr(learnware, key)!r}, got "
                f"{manifest[key]!r}",
                code="upload:user:incompatible-version",
                details={key: manifest[key]},
            )
    if learnware.kind == Kind.MODEL and not same_base(learnware, base):  # its RKMEs stay in one space
        kept = learnware.base_model.key if learnware.base_model else MINILM_KEY
        raise Conflict(
            f"field 'base_model': a new version must keep the base model {kept!r}, got "
            f"{manifest['base_model'] or MINILM_KEY!r}",
            code="upload:user:incompatible-version",
            details={"base_model": manifest["base_model"]},
        )
    for key, value in card.items():
        setattr(learnware, key, value)
    learnware.save()
    return learnware


def _adapter_config(package: Package) -> dict[str, Any] | None:
    raw = package.artifact.get("adapter_config.json")
    return json.loads(raw) if raw else None


def _delete_quietly(version: LearnwareVersion) -> None:
    try:
        version.package.storage.delete(version.package.name or "")
    except Exception:  # noqa: BLE001 - storage down: check_consistency removes the orphan later
        logger.warning("cannot delete the orphaned package %s", version.package.name, exc_info=True)


def learnware_upload(
    *, user: Any, data: bytes, learnware: Learnware | None = None
) -> tuple[Learnware, LearnwareVersion, Job]:
    """Check a package, store it and enqueue its publish job; a known name makes a new version.

    Raises
    ------
    ValidationFailed
        The package is unsafe or malformed (``upload:user:*``, naming the file or field).
    Conflict
        A new version changes the learnware's kind, modality or task.
    PermissionDenied
        The user is banned.
    """
    try:
        if not user.is_active:
            raise PermissionDenied("your account is banned from publishing", code="upload:user:banned")
        package = package_inspect(data, limits=ZipLimits(**zip_limits()))
    except ApplicationError as exc:
        # A refused upload leaves no version row, so the audit log is where reviewers see it.
        audit_record(
            action="upload.refused",
            actor=user,
            code=exc.code,
            message=exc.message[:500],
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
        raise
    sha = hashlib.sha256(data).hexdigest()
    stored: list[LearnwareVersion] = []
    committed: list[bool] = []
    try:
        with transaction.atomic():
            transaction.on_commit(lambda: committed.append(True))  # runs before the dispatch below
            lw = _learnware_for(user, package.manifest, package, learnware)
            number = (lw.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = LearnwareVersion(
                learnware=lw,
                number=number,
                manifest=package.manifest,
                artifact_sha256=sha,
                artifact_size=len(data),
                artifact_format=package.artifact_format,
                upload_sha256=sha,
            )
            version.package.save("package.zip", ContentFile(data), save=False)
            stored.append(version)
            version.save()
            job = job_create(kind="publish", owner=user, message=f"{lw.name} v{number}")
            LearnwareVersion.objects.filter(id=version.id).update(job=job)
            version.job = job
            audit_record(action="version.uploaded", actor=user, version=version, sha256=sha, size=len(data))
            job_enqueue(job=job, task_name="publish.run", args=[version.id], queue="compute")
    except BaseException:
        if not committed:  # the rows rolled back: the file must go too (after a commit it stays)
            for version in stored:
                _delete_quietly(version)
        raise
    return lw, version, job


def learnware_update(*, learnware: Learnware, user: Any, data: dict[str, Any]) -> Learnware:
    """Edit the card (description, tags, license, visibility) of one's own learnware."""
    if learnware.owner_id != user.id and not user.is_staff:
        raise NotFound(f"learnware {learnware.id} not found")
    changed = {}
    for key in (*CARD_FIELDS, "visibility"):
        if key in data and getattr(learnware, key) != data[key]:
            changed[key] = data[key]
            setattr(learnware, key, data[key])
    if changed:
        learnware.save()
        audit_record(action="learnware.updated", actor=user, learnware=learnware, fields=sorted(changed))
    return learnware


def learnware_delete(*, learnware: Learnware, user: Any) -> None:
    """Soft-delete: hidden everywhere and out of the index; files stay until an admin purges."""
    from marketplace.search.services import index_remove

    if learnware.owner_id != user.id and not user.is_staff:
        raise NotFound(f"learnware {learnware.id} not found")
    if learnware.deleted_at is not None:
        return
    learnware.deleted_at = timezone.now()
    Learnware.objects.filter(id=learnware.id).update(deleted_at=learnware.deleted_at)
    for version in learnware.versions.all():
        index_remove(version=version)
    audit_record(action="learnware.deleted", actor=user, learnware=learnware)
