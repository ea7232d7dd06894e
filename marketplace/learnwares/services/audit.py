"""The audit log: one row per state change of a learnware or version."""

from __future__ import annotations

from typing import Any

from marketplace.learnwares.models import AuditLog, Learnware, LearnwareVersion


def audit_record(
    *,
    action: str,
    actor: Any = None,
    learnware: Learnware | None = None,
    version: LearnwareVersion | None = None,
    **data: Any,
) -> AuditLog:
    """Write one audit row (``action`` like ``version.published``); ``data`` must be JSON-able."""
    if version is not None and learnware is None:
        learnware = version.learnware
    actor = actor if actor is not None and getattr(actor, "pk", None) else None
    return AuditLog.objects.create(
        actor=actor, action=action, learnware=learnware, version=version, data=data
    )
