"""Label encoding shared by the estimators equals np.unique's, on every integer path."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from specs.exceptions import InvalidDataError
from specs.transferability._checks import check_class_labels


@pytest.mark.parametrize(
    "labels",
    [
        np.array([5, 3, 3, 9, -2]),
        np.array([-128, 127, 0, 127], dtype=np.int8),  # the range does not fit int8
        np.array([0, 65535, 7], dtype=np.uint16),
        np.array([2**64 - 1, 2**64 - 3, 2**64 - 1], dtype=np.uint64),  # nor int64
        np.array([-(2**63), -(2**63) + 5, 3 - 2**63]),
        np.array([1, 10**12, 1]),  # sparse: np.unique's path
        np.array(["b", "a", "b"]),
        np.array([1.5, 0.5, 1.5]),
    ],
)
def test_codes_and_classes_equal_numpy_unique(labels: np.ndarray) -> None:
    codes, classes = check_class_labels(labels, labels.shape[0])
    want_classes, want_codes = np.unique(labels, return_inverse=True)
    assert_array_equal(classes, want_classes)
    assert classes.dtype == want_classes.dtype
    assert_array_equal(codes, want_codes)
    assert codes.dtype == np.int64


def test_one_class_is_refused() -> None:
    with pytest.raises(InvalidDataError, match="at least 2 classes"):
        check_class_labels(np.array([4, 4, 4]), 3)
