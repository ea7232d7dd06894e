"""Index health for /healthz: FAISS importable, the local index folder writable, generations."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def index_status() -> dict[str, Any]:
    import faiss

    from marketplace.search.models import IndexState
    from marketplace.search.store import _CACHE

    folder = settings.LWM_INDEX_DIR
    os.makedirs(folder, exist_ok=True)
    indexes = {
        s.key: {
            "generation": s.generation,
            "snapshot_generation": s.snapshot_generation,
            "loaded_generation": getattr(_CACHE.get(s.key), "generation", None),
        }
        for s in IndexState.objects.all()[:100]
    }
    return {
        "ok": os.access(folder, os.W_OK),
        "faiss": faiss.__version__,
        "folder": str(folder),
        "indexes": indexes,
    }
