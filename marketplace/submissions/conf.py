"""Limits and retention of submissions, read from Django settings with environment defaults.

The lead owns ``settings/base.py``; until these names move there, each falls back to an
environment variable of the same name (parsed by the shared ``env.py`` helpers, which fail
loudly on malformed values).
"""

from __future__ import annotations

from django.conf import settings

from marketplace.settings.env import env_int


def max_active() -> int:
    """Submissions a user may have pending or running at once."""
    return int(getattr(settings, "LWM_SUBMISSION_MAX_ACTIVE", env_int("LWM_SUBMISSION_MAX_ACTIVE", 3, minimum=1)))


def max_bytes() -> int:
    """Largest data file (each of unlabelled data and labelled sample) a submission accepts."""
    return int(getattr(settings, "LWM_SUBMISSION_MAX_BYTES", env_int("LWM_SUBMISSION_MAX_BYTES", 50 * 1024 * 1024, minimum=1)))


def retention_days() -> int:
    """Days after which a finished submission's data files and package are deleted."""
    return int(getattr(settings, "LWM_SUBMISSION_RETENTION_DAYS", env_int("LWM_SUBMISSION_RETENTION_DAYS", 30, minimum=1)))


def retry_after_seconds() -> int:
    """The retry hint sent with a 429 when a user is at the limit of active submissions."""
    return int(getattr(settings, "LWM_SUBMISSION_RETRY_AFTER", env_int("LWM_SUBMISSION_RETRY_AFTER", 30, minimum=1)))
