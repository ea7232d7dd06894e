"""Publishing settings: read from Django settings when the lead has added them there,
else from the environment (same names), so tests and workers can tune the sandbox.

Every name here is meant to move into ``settings/base.py``; until then this module
is the single place that reads them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from marketplace.settings.env import env_bool, env_float, env_int


def _get(name: str, reader: Any, default: Any, **kwargs: Any) -> Any:
    return getattr(settings, name) if hasattr(settings, name) else reader(name, default, **kwargs)


def review_required() -> bool:
    # New versions wait in pending_review for an admin when this is on.
    return bool(_get("LWM_REVIEW_REQUIRED", env_bool, False))


def sandbox_limits() -> dict[str, Any]:
    return {
        "memory_mb": _get("LWM_SANDBOX_MEMORY_MB", env_int, 2048, minimum=64),
        "cpu_seconds": _get("LWM_SANDBOX_CPU_SECONDS", env_int, 60, minimum=1),
        "wall_seconds": _get("LWM_SANDBOX_WALL_SECONDS", env_float, 120.0, minimum=1.0),
        "file_size_mb": _get("LWM_SANDBOX_FILE_SIZE_MB", env_int, 64, minimum=1),
    }


def rkme_k() -> int:
    # Reduced points per RKME computed from a sample (the learnware package's default).
    return int(_get("LWM_RKME_K", env_int, 100, minimum=1))


def zip_limits() -> dict[str, Any]:
    return {
        "max_bytes": int(getattr(settings, "LWM_MAX_UPLOAD_BYTES", 200 * 2**20)),
        "max_files": _get("LWM_PACKAGE_MAX_FILES", env_int, 200, minimum=1),
        "max_total_uncompressed": _get("LWM_PACKAGE_MAX_UNCOMPRESSED", env_int, 512 * 2**20, minimum=1),
        "max_ratio": _get("LWM_PACKAGE_MAX_RATIO", env_float, 100.0, minimum=1.0),
    }
