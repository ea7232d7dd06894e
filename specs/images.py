"""Raw images -> the pixel rows the market hands image learnwares and encoders.

Numpy only: shared by the submission pipeline (``workers.pipelines.reuse_package``) and the
client's ``Predictor`` so both read images the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError


def image_rows(X: Any, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """Images as float64 pixel rows in [0, 1], flattened in (C, H, W) order.

    Args:
        X: images (n, C, H, W), (n, H, W) when C = 1, or rows (n, C*H*W); uint8/int 0..255
            or float in [0, 1] (float above 1 is read as 0..255, as the market reads an NPZ).
        shape: [C, H, W] the images must have.

    Returns:
        (n, C*H*W) float64 rows in [0, 1].

    Raises:
        InvalidParameterError: ``shape`` is not three positive integers.
        DimensionMismatchError: ``X`` does not have ``shape``.
        InvalidDataError: non-numeric dtype, NaN/inf, or values outside [0, 1] / 0..255.
    """
    if len(shape) != 3 or any(int(v) <= 0 for v in shape):
        raise InvalidParameterError(
            f"image shape must be three positive integers [C, H, W], got {list(shape)}"
        )
    X = np.asarray(X)
    c, h, w = (int(v) for v in shape)
    if X.ndim == 3 and c == 1:
        X = X[:, None]
    if X.ndim == 2 and X.shape[1] == c * h * w:
        X = X.reshape(X.shape[0], c, h, w)
    if X.ndim != 4 or X.shape[1:] != (c, h, w):
        raise DimensionMismatchError(
            f"images must be (n, {c}, {h}, {w}) (or rows of {c * h * w} pixels), got {list(X.shape)}"
        )
    if X.dtype.kind not in "biuf":
        raise InvalidDataError(f"images must be numeric, got dtype {X.dtype}")
    values = X.astype(np.float32)
    if not np.isfinite(values).all():
        raise InvalidDataError("images hold NaN or infinite values")
    if X.dtype.kind in "biu" or values.max(initial=0.0) > 1.0:
        values = values / np.float32(255.0)
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise InvalidDataError("images must hold values in [0, 1] or 0..255")
    return values.reshape(values.shape[0], -1).astype(np.float64)


def rows_as_images(X: np.ndarray, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """Pixel rows (n, C*H*W) in (C, H, W) order -> images (n, C, H, W) of ``shape`` (a view).

    Raises:
        InvalidParameterError: ``shape`` is not three positive integers.
        DimensionMismatchError: the rows do not hold C*H*W pixels; the message names both shapes.
    """
    if len(shape) != 3 or any(int(v) <= 0 for v in shape):
        raise InvalidParameterError(
            f"image shape must be three positive integers [C, H, W], got {list(shape)}"
        )
    c, h, w = (int(v) for v in shape)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != c * h * w:
        raise DimensionMismatchError(
            f"rows {list(X.shape)} cannot be images of shape [{c}, {h}, {w}] ({c * h * w} pixels per row)"
        )
    return X.reshape(X.shape[0], c, h, w)
