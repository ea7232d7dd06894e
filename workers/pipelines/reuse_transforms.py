"""How rows reach a feature space in the reuse pipeline: a table space's unit-free standardisation
(:class:`SpaceTransform`) and an image space's encoder (:class:`ImageSpaceTransform`); the recipe
records either (``to_dict``) so a package predicts as the pipeline scored."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from specs import TableStandardizer


class SpaceTransform:
    """x -> (x / rms - mean) / scale with the rms of the user's data fixed, so that any later
    batch (the labelled sample, a prediction call) lands where the user's data landed."""

    def __init__(self, rms: np.ndarray, standardization: dict[str, Any]) -> None:
        self.rms = np.asarray(rms, dtype=np.float64)
        if standardization:
            std = TableStandardizer.from_dict(standardization)
            self.mean, self.scale = std.mean_, std.scale_
            self.unit_free = bool(std.scale_invariant)
        else:
            self.mean, self.scale, self.unit_free = np.zeros_like(self.rms), np.ones_like(self.rms), False

    def __call__(self, X: np.ndarray) -> np.ndarray:
        U = X / self.rms if self.unit_free else X
        return (U - self.mean) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "rms": self.rms.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "unit_free": self.unit_free,
        }


class ImageSpaceTransform:
    """Rows of flattened images (n, C*H*W) -> the image space (n, dim): reshaped to (n, C, H, W)
    and encoded by the space's encoder (``specs.image_spaces.image_encoder``: conv or Lite0).

    An image submission's labelled rows are its pixels, so the models (which take the images)
    and the from-scratch baselines see the pixels, while the methods that work in the space
    (job selectors, stitching head) see the encoding, as the RKMEs do.
    """

    def __init__(self, shape: list[int] | tuple[int, ...] | None, schema: dict[str, Any], dim: int) -> None:
        self.shape = tuple(int(v) for v in shape) if shape else None
        self.schema, self.dim = dict(schema), int(dim)
        self._encoded: dict[str, np.ndarray] = {}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.shape is None:
            raise ValidationFailed(
                "labelled: no images to map into the image space", code="submission:user:missing-data"
            )
        from marketplace.learnwares.encoding import image_encoder

        rows = np.ascontiguousarray(X, dtype=np.float32)
        key = hashlib.sha256(rows.tobytes()).hexdigest()
        if key not in self._encoded:  # assemble and evaluate map the same rows
            self._encoded[key] = (
                image_encoder(self.schema).encode(rows.reshape(-1, *self.shape)).astype(np.float64)
            )
        return self._encoded[key]

    def to_dict(self) -> dict[str, Any]:
        # The identity on the encoder's output, plus how rows reach it (a package predictor needs both).
        return {
            "rms": [1.0] * self.dim,
            "mean": [0.0] * self.dim,
            "scale": [1.0] * self.dim,
            "unit_free": False,
            # The space's schema (encoder, seed or weights, side) and the pixel shape: the recipe
            # rebuilds the same encoder through specs.image_spaces.
            "image": {**self.schema, "shape": list(self.shape) if self.shape else None},
        }
