"""specs.images: raw images -> pixel rows in (C, H, W) order, and back, every bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError, SpecError
from specs.images import image_rows, rows_as_images

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(4, 3, 5, 6), dtype=np.uint8)  # H=5, W=6: a swap of axes would show


def _reference(images: np.ndarray) -> np.ndarray:
    """Pixel by pixel: row i, position (c*H + h)*W + w holds image i at (c, h, w), over 255."""
    n, c, h, w = images.shape
    out = np.empty((n, c * h * w))
    for i in range(n):
        for k in range(c):
            for y in range(h):
                for x in range(w):
                    out[i, (k * h + y) * w + x] = float(images[i, k, y, x]) / 255.0
    return out


def test_uint8_images_become_unit_rows_in_c_h_w_order():
    rows = image_rows(RGB, [3, 5, 6])
    assert rows.shape == (4, 90) and rows.dtype == np.float64
    assert_allclose(rows, _reference(RGB), atol=1e-7)  # float32 division, then float64


def test_every_accepted_form_gives_the_same_rows():
    grey = RGB[:, :1]
    expected = image_rows(grey, [1, 5, 6])
    unit = grey.astype(np.float32) / 255.0
    for given in (
        grey[:, 0],
        unit,
        unit[:, 0],
        unit.reshape(4, -1),
        grey.astype(np.float64),
    ):  # float above 1: 0..255
        assert_allclose(image_rows(given, (1, 5, 6)), expected, atol=1e-7)


def test_rows_as_images_inverts_image_rows():
    rows = image_rows(RGB, [3, 5, 6])
    back = rows_as_images(rows, [3, 5, 6])
    assert back.shape == (4, 3, 5, 6)
    assert_array_equal(np.round(back * 255.0).astype(np.uint8), RGB)


@pytest.mark.parametrize(
    "given, shape, error, named",
    [
        (RGB, [3, 6, 5], DimensionMismatchError, "(n, 3, 6, 5)"),
        (RGB[:, :1, :, :, None], [1, 5, 6], DimensionMismatchError, "[4, 1, 5, 6, 1]"),
        (RGB[:, 0], [3, 5, 6], DimensionMismatchError, "(n, 3, 5, 6)"),  # (n, H, W) only for grey
        (np.full((2, 1, 5, 6), np.nan), [1, 5, 6], InvalidDataError, "NaN"),
        (-np.ones((2, 1, 5, 6)), [1, 5, 6], InvalidDataError, "[0, 1]"),
        (np.full((2, 1, 5, 6), 300.0), [1, 5, 6], InvalidDataError, "0..255"),
        (np.full((2, 1, 5, 6), "a"), [1, 5, 6], InvalidDataError, "dtype"),
        (RGB, [3, 5], InvalidParameterError, "[C, H, W]"),
        (RGB, [3, 0, 6], InvalidParameterError, "[3, 0, 6]"),
    ],
)
def test_bad_images_raise_a_spec_error_naming_the_problem(given, shape, error, named):
    with pytest.raises(error) as err:
        image_rows(given, shape)
    assert isinstance(err.value, SpecError) and isinstance(
        err.value, ValueError
    )  # callers catch ValueError too
    assert named in str(err.value)


def test_rows_of_another_pixel_count_name_both_shapes():
    with pytest.raises(DimensionMismatchError) as err:
        rows_as_images(np.zeros((2, 256)), [1, 8, 8])
    assert "[2, 256]" in str(err.value) and "[1, 8, 8]" in str(err.value) and "64 pixels" in str(err.value)
    with pytest.raises(InvalidParameterError):
        rows_as_images(np.zeros((2, 64)), [64])
