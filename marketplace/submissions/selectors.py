"""Reads for submissions: only their owner ever sees them (not other users, not learnware owners)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from marketplace.submissions.models import Submission


def submission_list(*, user: Any) -> QuerySet[Submission]:
    """The user's own submissions, newest first, with their jobs."""
    if not user.is_authenticated:
        return Submission.objects.none()
    return Submission.objects.filter(owner=user).select_related("job", "feature_space")


def submission_get(*, submission_id: uuid.UUID | str, user: Any) -> Submission | None:
    """The submission if ``user`` owns it; None otherwise (its existence does not leak)."""
    return submission_list(user=user).filter(id=submission_id).first()
