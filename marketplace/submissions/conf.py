"""Limits and retention of submissions (settings in ``settings/base.py``)."""

from __future__ import annotations

from typing import Any

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


def max_images() -> int:
    """Images one data file or labelled sample may hold (zip entries or NPZ rows)."""
    return int(settings.LWM_SUBMISSION_MAX_IMAGES)


def max_image_pixels() -> int:
    """Pixels (width x height) of one image, checked from its header before it is decoded."""
    return int(settings.LWM_SUBMISSION_MAX_IMAGE_PIXELS)


def max_image_values() -> int:
    """Decoded values (n x C x H x W) of one image file set: bounds the memory a submission takes."""
    return int(settings.LWM_SUBMISSION_MAX_IMAGE_VALUES)


def image_zip_limits() -> Any:
    """Zip limits of an image upload: the package validator's, with the submission's size and count caps."""
    from specs.packaging.zipsafe import ZipLimits

    return ZipLimits(
        max_bytes=max_bytes(),
        max_files=max_images() + 1,  # + labels.csv
        max_total_uncompressed=int(settings.LWM_PACKAGE_MAX_UNCOMPRESSED),
        max_ratio=float(settings.LWM_PACKAGE_MAX_RATIO),
    )
