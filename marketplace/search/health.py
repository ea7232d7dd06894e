"""Index health for /healthz: FAISS importable and the local index folder writable."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def index_status() -> dict[str, Any]:
    import faiss

    folder = settings.LWM_INDEX_DIR
    os.makedirs(folder, exist_ok=True)
    return {"ok": os.access(folder, os.W_OK), "faiss": faiss.__version__, "folder": str(folder)}
