"""The market's encoders, one per process, and an on-disk cache of text embeddings.

Loading MiniLM takes seconds, so each process loads it once, on first use; an
embedding is cached under ``VAR_DIR/cache/text-embeddings`` keyed by the sha256
of the text, so a card or sample encoded once is never encoded again.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from specs.encoders import MiniLMTextEncoder
from specs.image_spaces import image_encoder as space_image_encoder
from specs.minilm import minilm_path as find_minilm


def minilm_path() -> str:
    """The MiniLM folder: ``LWM_MINILM_PATH`` when set, else the offline package's
    (raises ``specs.minilm.MiniLMMissingError`` when neither is there)."""
    return find_minilm(settings.LWM_MINILM_PATH)


@functools.lru_cache(maxsize=1)
def text_encoder() -> MiniLMTextEncoder:
    return MiniLMTextEncoder(minilm_path())


def image_encoder(schema: dict[str, Any] | None) -> Any:
    """The encoder of the image space with this schema (``specs.image_spaces``: loaded once per
    process; the Lite0 space raises ``ImageWeightsMissingError`` without its weights)."""
    return space_image_encoder(schema)


def _cache_dir() -> Path:
    path = Path(settings.VAR_DIR) / "cache" / "text-embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def encode_texts(texts: list[str]) -> np.ndarray:
    """(n, 384) float32 MiniLM embeddings, computing only those not cached yet."""
    folder = _cache_dir()
    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
    out: list[np.ndarray | None] = []
    for key in keys:
        try:
            out.append(np.load(folder / f"{key}.npy", allow_pickle=False))
        except (OSError, ValueError):
            out.append(None)
    missing = [i for i, v in enumerate(out) if v is None]
    if missing:
        fresh = text_encoder().encode([texts[i] for i in missing])
        for i, row in zip(missing, fresh, strict=True):
            out[i] = row
            tmp = folder / f"{keys[i]}.{np.random.randint(1 << 30)}.tmp.npy"
            np.save(tmp, row, allow_pickle=False)
            tmp.replace(folder / f"{keys[i]}.npy")  # atomic: a concurrent reader never sees half a file
    return np.stack(out).astype(np.float32)  # type: ignore[arg-type]
