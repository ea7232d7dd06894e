"""Layer embeddings of the user's texts under an uploaded base model, computed in the sandbox.

A published base model is still an upload: its forward pass runs only in a sandboxed
``hf_encoder`` call in layer mode (``run_model(..., layers_max_length=...)``), which re-runs the
folder checks before loading. The worker keeps the cache (``specs.base_models.EmbeddingCache`` under
``VAR_DIR/embeddings``), keyed by the version's package sha256, so a text is embedded once per
(base model version, text) across submissions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings

from marketplace.core.exceptions import ApplicationError, TransientError
from marketplace.learnwares.conf import sandbox_limits
from marketplace.learnwares.models import LearnwareVersion
from specs.base_models import CachedLayerEmbedder, EmbeddingCache
from workers.pipelines.reuse_members import package_files
from workers.sandbox import SandboxLimits, SandboxUnavailable, run_model
from workers.sandbox.errors import SandboxError

MAX_TOKENS = 128  # as the probe and the adapters' runtime
TEXTS_PER_CALL = 256  # one sandbox call loads the model once; this bounds its output and its time
MODEL_PREFIX = "model/"


def embedding_cache() -> EmbeddingCache:
    """The worker's on-disk cache of layer embeddings (``.npy`` files, read without pickle)."""
    return EmbeddingCache(Path(settings.VAR_DIR) / "embeddings")


def model_folder_files(version: LearnwareVersion) -> dict[str, bytes]:
    """The Hugging Face folder of a base-model version's package (``model/*``), name -> bytes."""
    files = package_files(version)
    return {
        name[len(MODEL_PREFIX) :]: data
        for name, data in files.items()
        if name.startswith(MODEL_PREFIX) and "/" not in name[len(MODEL_PREFIX) :]
    }


class SandboxLayerEmbedder(CachedLayerEmbedder):
    """A published base model's layer embeddings, the texts the cache misses run in the sandbox."""

    def __init__(self, version: LearnwareVersion, cache: EmbeddingCache) -> None:
        row = version.learnware.base_model
        if row is None:
            raise ApplicationError(
                f"base model version {version.id} has no registered encoder",
                code="submission:app:base-model-unregistered",
                http_status=500,
            )
        super().__init__(
            digest=f"version-{version.artifact_sha256}",
            num_layers=row.num_layers,
            hidden_size=row.hidden_size,
            max_length=MAX_TOKENS,
            cache=cache,
        )
        self.version = version
        self.sandbox_calls = 0
        self._files: dict[str, bytes] | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._files is None:
            self._files = model_folder_files(self.version)
        limits = SandboxLimits(**sandbox_limits())
        parts = []
        for start in range(0, len(texts), TEXTS_PER_CALL):
            batch = np.array(texts[start : start + TEXTS_PER_CALL], dtype=str)
            try:
                parts.append(
                    run_model(
                        self._files,
                        batch,
                        kind="hf_encoder",
                        limits=limits,
                        layers_max_length=self.max_length,
                    )
                )
            except SandboxUnavailable as exc:
                raise TransientError(exc.message) from exc
            except SandboxError as exc:  # the model misbehaved: name it, do not crash the worker
                raise ApplicationError(
                    f"base model {self.version.learnware.name} v{self.version.number} failed in the "
                    f"sandbox: {exc.message}",
                    code="submission:app:base-model-failed",
                    http_status=500,
                ) from exc
            self.sandbox_calls += 1
        return np.concatenate(parts, axis=0)
