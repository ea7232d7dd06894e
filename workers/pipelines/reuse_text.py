"""Text in the reuse pipeline: the server's side of ``specs.adapter_runtime`` (LoRA adapters run with
every layer's states): the registered MiniLM base loaded once per process, its errors as the
pipeline's ``ApplicationError``, and a per-run cache of layer states (on the MiniLM here, on a
published base in the sandbox: ``workers.pipelines.reuse_base``) over the worker's on-disk one
(``workers.pipelines.embedding_cache``), which keeps them across submissions.

The sandbox still runs every adapter the publish pipeline checks; the tests compare the hook
runtime with PEFT in the sandbox on the same adapter.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.core.exceptions import ApplicationError
from specs import adapter_runtime
from specs.adapter_runtime import AdapterFilesError, Delta, arrow_delta, delta_of, embedding, lora_delta
from specs.assembly import ArrowRouter, LoRAAdapter
from specs.base_models import folder_digest
from specs.token_limit import MAX_TOKENS
from workers.pipelines.embedding_cache import adapter_identity, cached_text_rows
from workers.pipelines.reuse_base import PublishedBase, base_layer_states

__all__ = [
    "Delta",
    "LayerCache",
    "adapter_from_files",
    "arrow_delta",
    "base_model",
    "delta_of",
    "embedding",
    "layer_states",
    "lora_delta",
    "texts_key",
]


@functools.lru_cache(maxsize=1)
def base_model() -> tuple[Any, Any]:
    """(tokenizer, model) of the registered MiniLM base, loaded once per process (a copy of its
    own: forward hooks are added to its layers, so the text encoder's copy is never touched)."""
    from marketplace.learnwares.encoding import minilm_path
    from specs.minilm import load_minilm

    return load_minilm(minilm_path())


@contextmanager
def _as_application_errors() -> Iterator[None]:
    """An adapter this runtime cannot apply is our failure (the member was published), not the user's."""
    try:
        yield
    except AdapterFilesError as exc:
        raise ApplicationError(
            str(exc), code=f"submission:app:adapter-{exc.reason}", http_status=500
        ) from exc


def adapter_from_files(files: dict[str, bytes], *, base_model_key: str, name: str = "adapter") -> LoRAAdapter:
    """``specs.adapter_runtime.adapter_from_files``; raises ``ApplicationError``
    (``submission:app:adapter-unreadable`` / ``-unsupported``)."""
    with _as_application_errors():
        return adapter_runtime.adapter_from_files(files, base_model_key=base_model_key, name=name)


def layer_states(
    texts: Sequence[str], delta: Delta | None = None, modules: Sequence[str] = ()
) -> list[np.ndarray]:
    """``specs.adapter_runtime.layer_states`` on the registered base: L arrays (n, 384) float64."""
    with _as_application_errors():
        return adapter_runtime.layer_states(base_model(), texts, delta, modules)


def texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(hashlib.sha256(t.encode()).digest())
    return digest.hexdigest()


class LayerCache:
    """Layer states per (adapter or assembly key, texts), computed once per run: on the MiniLM in this
    process (the market's own base), or on a published base in the sandbox (``base``, an upload:
    ``workers.pipelines.reuse_base.base_layer_states``)."""

    def __init__(self, base: PublishedBase | None = None) -> None:
        self.base = base
        self._states: dict[tuple[str, str], list[np.ndarray]] = {}

    def states(
        self, key: str, texts: Sequence[str], model: LoRAAdapter | ArrowRouter | None
    ) -> list[np.ndarray]:
        """L arrays (n, hidden) float64 of ``texts`` with ``model`` applied (None: the base alone)."""
        k = (key, texts_key(texts))
        if k not in self._states:
            if self.base is not None:
                self._states[k] = base_layer_states(self.base, list(texts), model)
            else:
                self._states[k] = minilm_layer_states(list(texts), model)
        return self._states[k]


@functools.lru_cache(maxsize=1)
def _minilm_facts() -> tuple[str, int, int]:
    """(folder digest, layers, hidden size) of the registered MiniLM's local folder, read once."""
    from marketplace.learnwares.encoding import minilm_path

    folder = Path(minilm_path())
    config = json.loads((folder / "config.json").read_text())
    return folder_digest(folder), int(config["num_hidden_layers"]), int(config["hidden_size"])


def minilm_layer_states(texts: list[str], model: LoRAAdapter | ArrowRouter | None) -> list[np.ndarray]:
    """:func:`layer_states` of ``texts`` with ``model`` applied (None: the MiniLM alone), through the
    worker's embedding cache (key: the MiniLM folder's digest, the model's bytes, mean pooling, the
    runtime's token limit, each text), so a text meets each adapter once across submissions."""
    digest, layers, hidden = _minilm_facts()

    def run(missing: list[str]) -> np.ndarray:  # (m, L, hidden)
        delta, modules = delta_of(model) if model is not None else (None, [])
        return np.stack(layer_states(missing, delta, modules), axis=1)

    states = cached_text_rows(
        base=f"folder-{digest}",
        adapter=adapter_identity(model.to_bytes() if model is not None else None),
        pooling="mean",  # the MiniLM's (specs.adapter_runtime.ADAPTER_BASE)
        call="layers",
        max_length=MAX_TOKENS,
        texts=texts,
        shape=(layers, hidden),
        compute=run,
    ).astype(np.float64)
    return [states[:, i, :] for i in range(layers)]
