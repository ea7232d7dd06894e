"""The worker's one on-disk cache of base-model embeddings (``VAR_DIR/embeddings``), used by model
selection (``model_selection_embed``), adapters on a published base (``reuse_base``: every layer's
states with an adapter or none, and the base's pooled embedding of the user's texts) and adapters on
the MiniLM (``reuse_text``).

They share the folder and its size cap, not entries. The reuse pipeline's namespace is (base folder
digest, adapter identity, pooling-call) and its key adds the token limit and the text's sha256
(``specs.base_models.embedding_cache``): everything the sandboxed call's output depends on, so a
second submission over the same texts, base and adapters runs no forward pass. Model selection keys
a base by its version's package sha256 (``version-<sha>``) or its files' digest (``files-<digest>``)
with no adapter or pooling part, so a text ranked by model selection is embedded again by an adapter
submission on the same base, and the other way round.

One instance per process and folder (:func:`embedding_cache`): it walks the folder to learn its size
once, then only when a write crosses the cap (at most once per ``evict_interval_s``). It keeps no
entries in memory: a long-lived worker would otherwise grow without bound, and a hit reads one small
``.npy`` file.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from specs.base_models import EmbeddingCache, cache_namespace, cached_rows, text_key

NO_ADAPTER = "none"


def embedding_cache() -> EmbeddingCache:
    """The process's on-disk cache (``.npy`` files, read without pickle, no memory layer), capped at
    ``LWM_EMBEDDING_CACHE_MB`` (least recently used files go first)."""
    return _instance(
        str(Path(settings.VAR_DIR) / "embeddings"), settings.LWM_EMBEDDING_CACHE_MB * 1024 * 1024
    )


@functools.lru_cache(maxsize=4)  # one per (folder, cap): a test that moves VAR_DIR gets its own
def _instance(directory: str, max_bytes: int) -> EmbeddingCache:
    return EmbeddingCache(directory, max_bytes=max_bytes, memory_items=0)


def adapter_identity(staged: bytes | None) -> str:
    """What an adapter contributes to a cache key: ``sha256-<hex>`` of the bytes the sandbox is given
    (``to_bytes()`` of a LoRA, a merged LoRA or an Arrow router: sorted JSON header + arrays, so equal
    models give equal bytes; the caller passes the bytes it stages, serialised once), or ``none`` for
    the base alone."""
    if staged is None:
        return NO_ADAPTER
    return "sha256-" + hashlib.sha256(staged).hexdigest()


def cached_text_rows(
    *,
    base: str,
    adapter: str,
    pooling: str,
    call: str,
    max_length: int,
    texts: Sequence[str],
    shape: tuple[int, ...],
    compute: Callable[[list[str]], np.ndarray],
) -> np.ndarray:
    """(n, *shape) float32 rows of ``texts``: cached ones read back, the others computed by ``compute``
    (one call over the misses, in the order given) and stored. ``base`` names the weights (a package
    sha256 or a folder digest, prefixed with which), ``adapter`` is :func:`adapter_identity`, ``call``
    what is stored (``layers``: every layer's states; ``pooled``: the encoder's output)."""
    namespace = cache_namespace(base, adapter, f"{pooling}-{call}")
    texts = [str(t) for t in texts]
    rows, _ = cached_rows(
        embedding_cache(), namespace, max_length, texts, [text_key(t) for t in texts], shape, compute
    )
    return rows
