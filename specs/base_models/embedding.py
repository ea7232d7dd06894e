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
from typing import Any

import numpy as np

from specs.base_models.embedding_cache import EmbeddingCache, cached_rows
from specs.base_models.folder import ModelFolder, load_text_encoder
from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.token_limit import MAX_TOKENS
from specs.transferability.layers import pool_hidden_states


def text_key(text: str) -> str:
    """sha256 of the UTF-8 text: the cache's per-text key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        stacked, encoded = cached_rows(  # (n, L, h)
            self.cache,
            self.digest,
            self.max_length,
            items,
            keys,
            (self.num_layers, self.hidden_size),
            self._encode,
        )
        return LayerEmbeddings(np.ascontiguousarray(stacked.transpose(1, 0, 2)), encoded)


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
        max_length: int = MAX_TOKENS,
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
