"""Embed texts at every hidden layer of a checked base model, with a cache per (model, text).

One text's layer embeddings are its token states at each transformer layer, mean-pooled over the
attention mask (:func:`specs.transferability.pool_hidden_states`, the one pooling the estimators
use). Padding does not change them (masked tokens are neither attended to nor averaged), so they
are a function of (model digest, max_length, text) alone and are cached under that key: ranking
several candidates on the same rows, or the same candidate on overlapping tasks, runs each text
through each model once.

Layers are the outputs of the ``num_layers`` transformer blocks, first to last; the embedding
layer's output is left out as transformer-ranker does (``include_embeddings`` keeps it).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specs.base_models.folder import ModelFolder, load_text_encoder
from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.transferability.layers import pool_hidden_states


def text_key(text: str) -> str:
    """sha256 of the UTF-8 text: the cache's per-text key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Layer embeddings (L, h) float32 per (model digest, max_length, text hash).

    Parameters
    ----------
    directory : path, optional
        Also keep entries as ``.npy`` files there (read back with ``allow_pickle=False``), so a
        later process reuses them; None keeps them in memory only.
    max_bytes : int, optional
        A cap on the directory's ``.npy`` files. When a write takes it over the cap, the least
        recently used files (a hit refreshes a file's mtime) are deleted until the directory holds at
        most ``EVICT_TO`` of the cap, so eviction runs once per many writes, not on every one. Other
        processes may share the directory: the size is re-read from disk when a write would cross the
        cap, and a file another process deleted is just a later miss. None: no cap.

    Attributes
    ----------
    hits, misses : int
        Lookups answered from the cache / not.
    evicted : int
        Files this instance deleted to stay under ``max_bytes``.
    """

    EVICT_TO = 0.8

    def __init__(self, directory: str | Path | None = None, *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise InvalidParameterError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = max_bytes
        self._memory: dict[tuple[str, int, str], np.ndarray] = {}
        self._disk_bytes: int | None = None  # read lazily; an estimate between evictions
        self.hits = 0
        self.misses = 0
        self.evicted = 0

    def _file(self, key: tuple[str, int, str]) -> Path | None:
        if self.directory is None:
            return None
        digest, max_length, text = key
        return self.directory / digest / str(max_length) / f"{text}.npy"

    def get(self, key: tuple[str, int, str]) -> np.ndarray | None:
        found = self._memory.get(key)
        path = self._file(key)
        if found is None and path is not None and path.is_file():
            try:
                found = np.load(path, allow_pickle=False)
                if self.max_bytes is not None:
                    path.touch()  # recently used: the last to be evicted
            except FileNotFoundError:  # evicted by another process between the check and the read
                found = None
            if found is not None:
                self._memory[key] = found
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: tuple[str, int, str], value: np.ndarray) -> None:
        self._memory[key] = value
        path = self._file(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, value, allow_pickle=False)
            if self.max_bytes is not None:
                self._after_write(path.stat().st_size)

    def _files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every cached file, oldest first."""
        assert self.directory is not None
        found = []
        for path in self.directory.rglob("*.npy"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return sorted(found)

    def _after_write(self, size: int) -> None:
        assert self.max_bytes is not None
        if self._disk_bytes is None:
            self._disk_bytes = sum(s for _, s, _ in self._files())
        else:
            self._disk_bytes += size
        if self._disk_bytes <= self.max_bytes:
            return
        files = self._files()
        total = sum(s for _, s, _ in files)
        target = int(self.max_bytes * self.EVICT_TO)
        for _, file_size, path in files:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= file_size
            self.evicted += 1
        self._disk_bytes = total

    def __len__(self) -> int:
        return len(self._memory)


@dataclass(frozen=True)
class LayerEmbeddings:
    """Pooled embeddings of n texts at L layers.

    Attributes
    ----------
    layers : ndarray (L, n, h) float32
        First to last layer.
    texts_encoded : int
        Texts this call ran through the model (the others came from the cache).
    """

    layers: np.ndarray
    texts_encoded: int


class CachedLayerEmbedder(ABC):
    """Layer embeddings of texts with the per-(model, text) cache; subclasses say how texts are encoded.

    :class:`LayerEmbedder` runs the model in this process (trusted folders, benchmarks); the worker's
    embedder runs an uploaded one in the sandbox. Both share this cache logic, so a ranking is the
    same whichever encoded the texts.

    Attributes
    ----------
    digest : str
        Names the weights (and the layer selection); part of the cache key.
    num_layers, hidden_size, max_length : int
    """

    def __init__(
        self, *, digest: str, num_layers: int, hidden_size: int, max_length: int, cache: EmbeddingCache | None
    ) -> None:
        if max_length < 2:
            raise InvalidParameterError(f"max_length must be >= 2, got {max_length}")
        self.digest = digest
        self.num_layers = int(num_layers)
        self.hidden_size = int(hidden_size)
        self.max_length = int(max_length)
        self.cache = cache if cache is not None else EmbeddingCache()

    @abstractmethod
    def _encode(self, items: list[Any]) -> np.ndarray:
        """(len(items), L, h) float32 for the texts (or images) not in the cache."""

    def embed(self, texts: Sequence[str]) -> LayerEmbeddings:
        """Layer embeddings of ``texts`` (duplicates are encoded once).

        Raises
        ------
        InvalidDataError
            No texts, or an item that is not a string.
        """
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidDataError("texts must be a non-empty sequence of strings")
        return self.embed_keyed(texts, [text_key(t) for t in texts])

    def embed_keyed(self, items: Sequence[Any], keys: Sequence[str]) -> LayerEmbeddings:
        """Layer embeddings of ``items`` whose content hashes are ``keys``: the cache logic shared by
        texts (:func:`text_key`) and images (``specs.base_models.images.image_key``); an item whose key
        was seen is encoded once."""
        found: dict[str, np.ndarray] = {}
        todo: dict[str, Any] = {}
        for item, key in zip(items, keys, strict=True):
            if key in found or key in todo:
                continue
            cached = self.cache.get((self.digest, self.max_length, key))
            if cached is None:
                todo[key] = item
            else:
                found[key] = cached
        if todo:
            encoded = np.asarray(self._encode(list(todo.values())), dtype=np.float32)
            if encoded.shape != (len(todo), self.num_layers, self.hidden_size):
                raise InvalidDataError(
                    f"the encoder returned shape {encoded.shape}, expected "
                    f"{(len(todo), self.num_layers, self.hidden_size)}"
                )
            for key, value in zip(todo, encoded, strict=True):
                self.cache.put((self.digest, self.max_length, key), value)
                found[key] = value
        stacked = np.stack([found[k] for k in keys])  # (n, L, h)
        return LayerEmbeddings(np.ascontiguousarray(stacked.transpose(1, 0, 2)), len(todo))


class LayerEmbedder(CachedLayerEmbedder):
    """Embeds texts at every layer of one base model in this process, loading it on first use.

    Only for folders this process may run (the offline models, benchmarks, the sandbox's own call):
    an uploaded model is embedded in the sandbox (``workers.pipelines.model_selection_embed``).

    Parameters
    ----------
    folder : ModelFolder
        From :func:`specs.base_models.inspect_model_folder`.
    max_length : int, default 128
        Tokens per text (longer texts are truncated); part of the cache key.
    batch_size : int, default 32
    cache : EmbeddingCache, optional
        Shared between embedders to rank several models; a private one by default.
    include_embeddings : bool, default False
        Also return the embedding layer's output as layer 0.

    Attributes
    ----------
    forward_passes : int
        Batches run through the model so far.
    """

    def __init__(
        self,
        folder: ModelFolder,
        *,
        max_length: int = 128,
        batch_size: int = 32,
        cache: EmbeddingCache | None = None,
        include_embeddings: bool = False,
    ) -> None:
        if max_length < 2 or batch_size < 1:
            raise InvalidParameterError(
                f"max_length must be >= 2 and batch_size >= 1, got {max_length}, {batch_size}"
            )
        # The digest alone names the weights; the flag changes what is stored, so it joins the key.
        super().__init__(
            digest=f"{folder.digest}{'+emb' if include_embeddings else ''}",
            num_layers=folder.num_layers + int(include_embeddings),
            hidden_size=folder.hidden_size,
            max_length=max_length,
            cache=cache,
        )
        self.folder = folder
        self.batch_size = int(batch_size)
        self.include_embeddings = include_embeddings
        self.forward_passes = 0
        self._tokenizer: Any = None
        self._model: Any = None

    def _encode(self, items: list[Any]) -> np.ndarray:
        """(len(texts), L, h) float32 for texts not in the cache, run longest-first to limit padding."""
        texts: list[str] = items
        import torch

        if self._model is None:
            self._tokenizer, self._model = load_text_encoder(self.folder)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.num_layers, self.folder.hidden_size), dtype=np.float32)
        skip = 0 if self.include_embeddings else 1
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                # input_ids + attention_mask only: DistilBERT takes no token_type_ids, and the others
                # default them to zeros, which is what a single-segment tokenizer sends.
                hidden = self._model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    output_hidden_states=True,
                ).hidden_states[skip:]
                self.forward_passes += 1
                mask = batch["attention_mask"].numpy()
                for layer, states in enumerate(hidden):
                    out[rows, layer] = pool_hidden_states(states.float().numpy(), mask, "mean")
        return out
