"""Limits and retention of submissions (settings in ``settings/base.py``)."""

from __future__ import annotations

from django.conf import settings


def max_active() -> int:
    """Submissions a user may have pending or running at once."""
    return int(settings.LWM_SUBMISSION_MAX_ACTIVE)


def max_bytes() -> int:
    """Largest data file (each of unlabelled data and labelled sample) a submission accepts."""
    return int(settings.LWM_SUBMISSION_MAX_BYTES)


def retention_days() -> int:
    """Days after which a finished submission's data files and package are deleted."""
    return int(settings.LWM_SUBMISSION_RETENTION_DAYS)


def retry_after_seconds() -> int:
    """The retry hint sent with a 429 when a user is at the limit of active submissions."""
    return int(settings.LWM_SUBMISSION_RETRY_AFTER)
