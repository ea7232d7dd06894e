"""Layer embeddings of the user's texts under an uploaded base model, computed in the sandbox.

A published base model is still an upload: its forward pass runs only in a sandboxed
``hf_encoder`` call in layer mode (``run_model(..., layers_max_length=...)``), which re-runs the
folder checks before loading. The worker keeps the cache (``workers.pipelines.embedding_cache``: the
folder adapter submissions use too, under other keys, so their entries are not shared), keyed by the
version's package sha256, so a text is embedded once per (base model version, text) across model
selection submissions.

The market's own MiniLM (a *registered* version, ``marketplace.learnwares.services.registered``)
has no package: its folder's files are read from the local offline copy instead, keyed by their
own sha256, and go through the same sandboxed call, so there is one implementation of the forward
pass. When that copy is absent the model is skipped with :class:`BaseModelUnavailable`'s reason.

An image base model (:class:`SandboxImageLayerEmbedder`) goes through the same sandboxed call with
the images (n, C, H, W) float32 as inputs; its cache key holds each image's pixel hash
(``specs.base_models.images.image_key``) and the side the images are resized to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.core.exceptions import ApplicationError, TransientError
from marketplace.learnwares.conf import sandbox_limits
from marketplace.learnwares.encoding import minilm_path
from marketplace.learnwares.models import LearnwareVersion
from marketplace.learnwares.services.registered import MINILM_KEY, is_registered
from specs.base_models import CachedLayerEmbedder, EmbeddingCache, LayerEmbeddings
from specs.base_models.folder import TOKENIZER_FILES, WEIGHTS_FILE, files_digest
from specs.base_models.images import check_images, image_key
from specs.minilm import MiniLMMissingError
from specs.token_limit import MAX_TOKENS
from workers.pipelines.reuse_members import package_files
from workers.sandbox import SandboxLimits, SandboxUnavailable, run_model
from workers.sandbox.errors import SandboxError

TEXTS_PER_CALL = 256  # one sandbox call loads the model once; this bounds its output and its time
MODEL_PREFIX = "model/"


def model_folder_files(version: LearnwareVersion) -> dict[str, bytes]:
    """The Hugging Face folder of a base-model version's package (``model/*``), name -> bytes."""
    files = package_files(version)
    return {
        name[len(MODEL_PREFIX) :]: data
        for name, data in files.items()
        if name.startswith(MODEL_PREFIX) and "/" not in name[len(MODEL_PREFIX) :]
    }


class BaseModelUnavailable(Exception):
    """A registered base model's local files are not installed: it is skipped, with this reason."""


def registered_folder_files(version: LearnwareVersion) -> dict[str, bytes]:
    """The files of a registered (shipped-with-the-product) base model, read from its local folder:
    the same names a published package holds under ``model/`` (config, weights, tokenizer).

    Raises
    ------
    BaseModelUnavailable
        The offline package is not installed, or its folder lacks the config or the weights.
    """
    key = version.manifest.get("base_model")
    if key != MINILM_KEY:  # the only model the product ships; another would need its own folder
        raise BaseModelUnavailable(f"no local folder is known for the registered base model {key!r}")
    try:
        folder = Path(minilm_path())
    except MiniLMMissingError as exc:
        raise BaseModelUnavailable(f"its weights are not installed on this worker ({exc})") from None
    names = ("config.json", WEIGHTS_FILE, *TOKENIZER_FILES)
    files = {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}
    if "config.json" not in files or WEIGHTS_FILE not in files:
        raise BaseModelUnavailable(f"its folder {folder} lacks config.json or {WEIGHTS_FILE}")
    return files


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
        # A registered model's files are read now (a missing copy is known before ranking starts)
        # and key the cache by their content; a package is read at the first cache miss.
        self._files: dict[str, bytes] | None = None
        digest = f"version-{version.artifact_sha256}"
        if is_registered(version):
            self._files = registered_folder_files(version)
            digest = f"files-{files_digest(self._files)}"  # the folder digest's formula
        super().__init__(
            digest=digest,
            num_layers=row.num_layers,
            hidden_size=row.hidden_size,
            max_length=MAX_TOKENS,
            cache=cache,
        )
        self.version = version
        self.sandbox_calls = 0

    def _batch(self, items: list[Any]) -> np.ndarray:
        """The sandbox call's inputs: an array of str (texts)."""
        return np.array(items, dtype=str)

    def files(self) -> dict[str, bytes]:
        """The base's folder files, read once (the sandbox calls and the package's weights digest)."""
        if self._files is None:
            self._files = model_folder_files(self.version)
        return self._files

    def _encode(self, items: list[Any]) -> np.ndarray:
        files = self.files()
        limits = SandboxLimits(**sandbox_limits())
        parts = []
        for start in range(0, len(items), TEXTS_PER_CALL):
            batch = self._batch(items[start : start + TEXTS_PER_CALL])
            try:
                parts.append(
                    run_model(
                        files,
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


class SandboxImageLayerEmbedder(SandboxLayerEmbedder):
    """A published image base model's layer embeddings of images, the cache misses run in the sandbox.

    The package is read when the embedder is made: its ``config.json`` gives the side images are
    resized to, which joins the cache key as a text's token limit does.
    """

    def __init__(self, version: LearnwareVersion, cache: EmbeddingCache) -> None:
        super().__init__(version, cache)
        self._files = model_folder_files(version)
        try:
            side = json.loads(self._files["config.json"]).get("image_size", 224)
        except (KeyError, ValueError):
            side = 224  # the sandbox's folder check refuses such a package with its own code
        self.max_length = max(int(side) if isinstance(side, int) else 224, 2)

    def embed(self, texts: Any) -> LayerEmbeddings:
        """Layer embeddings of images (n, C, H, W) float in [0, 1] (the name is the base class's)."""
        images = check_images(texts)
        return self.embed_keyed(list(images), [image_key(image) for image in images])

    def _batch(self, items: list[Any]) -> np.ndarray:
        return np.stack(items).astype(np.float32)
