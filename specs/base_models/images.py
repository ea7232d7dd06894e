"""Image base models: preprocess [0, 1] images, embed them at every layer, pool a probe batch.

A checked image folder (``ModelFolder.modality == "image"``) is loaded by
:func:`specs.base_models.folder.load_checked_model` (safetensors, no remote code, weights must match
the config); its ``preprocessor_config.json`` was read as data by
:func:`specs.base_models.image_folder.read_preprocessing`. One image's layer embeddings are the token
states ([CLS] and patches) of each transformer layer, averaged over the tokens: every token is real,
so there is no mask, and the mean is :func:`specs.transferability.pool_hidden_states`' "mean" with a
full mask. They depend on (model digest, image pixels) alone and are cached under that key
(:func:`image_key`), as texts are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from specs.base_models.embedding import CachedLayerEmbedder, LayerEmbeddings
from specs.base_models.embedding_cache import EmbeddingCache
from specs.base_models.errors import BaseModelFolderError
from specs.base_models.folder import BaseModelLimits, ModelFolder, load_checked_model
from specs.base_models.image_folder import ImagePreprocessing, read_preprocessing
from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.transferability.layers import pool_hidden_states

IMAGE_POOLINGS = ("mean", "cls")


def image_key(image: np.ndarray) -> str:
    """sha256 of one image's shape and float32 pixels in [0, 1]: the cache's per-image key."""
    pixels = np.ascontiguousarray(image, dtype=np.float32)
    return hashlib.sha256(repr(pixels.shape).encode() + b"\0" + pixels.tobytes()).hexdigest()


def check_images(images: Any) -> np.ndarray:
    """(n, C, H, W) float32 in [0, 1] with C in (1, 3), as the market's image readers return them.

    Raises
    ------
    InvalidDataError
    """
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[1] not in (1, 3) or array.dtype.kind != "f":
        raise InvalidDataError(
            f"images must be a non-empty float array (n, 1 or 3, H, W), got {array.dtype} {list(array.shape)}"
        )
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise InvalidDataError("images must hold finite values in [0, 1]")
    return array


def preprocess_images(images: np.ndarray, prep: ImagePreprocessing) -> Any:
    """``pixel_values`` (n, C, S, S) float32 torch tensor: channels matched to the model (grey
    repeated, colour averaged), a bilinear resize (antialiased when shrinking) to ``image_size``, and
    ``(x - mean) / std`` per channel."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(check_images(images))
    if x.shape[1] != prep.num_channels:
        x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x.mean(dim=1, keepdim=True)
    if tuple(x.shape[2:]) != (prep.image_size, prep.image_size):
        x = F.interpolate(
            x, size=(prep.image_size, prep.image_size), mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.tensor(prep.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def load_image_encoder(folder: ModelFolder) -> tuple[ImagePreprocessing, Any]:
    """(preprocessing, encoder in eval mode) of a checked image folder; never runs its code.

    Raises
    ------
    BaseModelFolderError, WeightsMismatchError
    """
    import json

    if folder.modality != "image":
        raise BaseModelFolderError(
            f"{folder.model_type} is a {folder.modality} encoder, not an image one",
            details={"field": "model_type"},
        )
    config = json.loads((Path(folder.path) / "config.json").read_text(encoding="utf-8"))
    prep = read_preprocessing(Path(folder.path), config, BaseModelLimits().max_json_bytes)
    return prep, load_checked_model(folder)


def embed_image_probe(folder: ModelFolder, images: np.ndarray, pooling: str) -> np.ndarray:
    """(n, hidden) float32: the last hidden state (after the final layer norm) pooled by ``pooling``;
    what a published image base model's probe records."""
    import torch

    if pooling not in IMAGE_POOLINGS:
        raise InvalidParameterError(f"pooling must be one of {IMAGE_POOLINGS}, got {pooling!r}")
    prep, model = load_image_encoder(folder)
    with torch.inference_mode():
        hidden = model(pixel_values=preprocess_images(images, prep)).last_hidden_state
    # every token is real in a ViT (no padding): the mean over all of them, or the first ([CLS]) one
    return pool_hidden_states(hidden, None, "first" if pooling == "cls" else "mean").astype(np.float32)


class ImageLayerEmbedder(CachedLayerEmbedder):
    """Embeds images at every layer of one image base model in this process, loading it on first use.

    Only for folders this process may run (tests, benchmarks, the sandbox's own call): an uploaded
    model is embedded in the sandbox (``workers.pipelines.model_selection_embed``).

    The cache key's length slot holds the side images are resized to (the config's ``image_size``).

    Parameters
    ----------
    folder : ModelFolder
        An image folder from :func:`specs.base_models.inspect_model_folder`.
    batch_size : int, default 32
    cache : EmbeddingCache, optional
    """

    def __init__(
        self, folder: ModelFolder, *, batch_size: int = 32, cache: EmbeddingCache | None = None
    ) -> None:
        if batch_size < 1:
            raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
        prep, self._model = load_image_encoder(folder)
        super().__init__(
            digest=folder.digest,
            num_layers=folder.num_layers,
            hidden_size=folder.hidden_size,
            max_length=max(prep.image_size, 2),
            cache=cache,
        )
        self.prep = prep
        self.folder = folder
        self.batch_size = int(batch_size)
        self.forward_passes = 0

    def embed(self, texts: Any) -> LayerEmbeddings:
        """Layer embeddings of images (n, C, H, W) float in [0, 1] (the name is the base class's).

        Raises
        ------
        InvalidDataError
        """
        images = check_images(texts)
        return self.embed_keyed(list(images), [image_key(image) for image in images])

    def _encode(self, items: list[Any]) -> np.ndarray:
        import torch

        images = np.stack(items)
        out = np.empty((len(images), self.num_layers, self.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = preprocess_images(images[start : start + self.batch_size], self.prep)
                hidden = self._model(pixel_values=pixels, output_hidden_states=True).hidden_states[1:]
                self.forward_passes += 1
                for layer, states in enumerate(hidden):
                    values = states.float().numpy()
                    mask = np.ones(values.shape[:2], dtype=np.int64)
                    out[start : start + len(pixels), layer] = pool_hidden_states(values, mask, "mean")
        return out
