"""Publishing settings, gathered for the services (values live in ``settings/base.py``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def review_required() -> bool:
    # New versions wait in pending_review for an admin when this is on.
    return bool(settings.LWM_REVIEW_REQUIRED)


def sandbox_limits() -> dict[str, Any]:
    return {
        "memory_mb": settings.LWM_SANDBOX_MEMORY_MB,
        "cpu_seconds": settings.LWM_SANDBOX_CPU_SECONDS,
        "wall_seconds": settings.LWM_SANDBOX_WALL_SECONDS,
        "file_size_mb": settings.LWM_SANDBOX_FILE_SIZE_MB,
    }


def rkme_k() -> int:
    return int(settings.LWM_RKME_K)


def zip_limits() -> dict[str, Any]:
    return {
        "max_bytes": int(settings.LWM_MAX_UPLOAD_BYTES),
        "max_files": settings.LWM_PACKAGE_MAX_FILES,
        "max_total_uncompressed": settings.LWM_PACKAGE_MAX_UNCOMPRESSED,
        "max_ratio": settings.LWM_PACKAGE_MAX_RATIO,
    }
