"""Text in the reuse pipeline: the server's side of ``specs.adapter_runtime`` (LoRA adapters run with
every layer's states): the registered MiniLM base loaded once per process, its errors as the
pipeline's ``ApplicationError``, and a per-run cache of layer states (on the MiniLM here, on a
published base in the sandbox: ``workers.pipelines.reuse_base``).

The sandbox still runs every adapter the publish pipeline checks; the tests compare the hook
runtime with PEFT in the sandbox on the same adapter.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from marketplace.core.exceptions import ApplicationError
from specs import adapter_runtime
from specs.adapter_runtime import AdapterFilesError, Delta, arrow_delta, delta_of, embedding, lora_delta
from specs.assembly import ArrowRouter, LoRAAdapter
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
                delta, modules = delta_of(model) if model is not None else (None, [])
                self._states[k] = layer_states(texts, delta, modules)
        return self._states[k]
