from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError
from specs.kernels import (
    default_gamma,
    kernel_mean_self_term,
    kernel_mean_terms,
    rbf_kernel,
    row_chunks,
)


def brute_rbf(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    return np.array(
        [[math.exp(-gamma * sum((x - y) ** 2 for x, y in zip(a, b, strict=True))) for b in B] for a in A]
    )


def test_rbf_kernel_matches_elementwise_formula(rng):
    A, B = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    assert_allclose(rbf_kernel(A, B, 0.3), brute_rbf(A, B, 0.3), rtol=1e-12)


def test_rbf_kernel_is_symmetric_with_unit_diagonal(rng):
    A = rng.normal(size=(20, 4))
    K = rbf_kernel(A, A, 0.5)
    assert_allclose(K, K.T, atol=1e-15)
    assert_allclose(np.diag(K), 1.0, atol=1e-12)
    assert K.dtype == np.float64


def test_rbf_kernel_stays_at_most_one_under_cancellation():
    # Far from the origin ||a||^2 + ||b||^2 - 2ab cancels catastrophically and
    # can come out negative; the clip keeps k <= 1 and finite.
    A = np.full((3, 5), 1e8) + np.arange(3)[:, None] * 1e-9
    K = rbf_kernel(A, A, 1.0)
    assert np.isfinite(K).all()
    assert (K <= 1.0).all() and (K >= 0.0).all()


def test_rbf_kernel_accepts_int_and_float32_and_returns_float64():
    A = np.array([[0, 1], [2, 3]], dtype=np.int32)
    K = rbf_kernel(A, A.astype(np.float32), 0.25)
    assert K.dtype == np.float64
    assert_allclose(K[0, 1], math.exp(-0.25 * 8), rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.0, -1.0, float("nan"), float("inf"), "0.1", None])
def test_rbf_kernel_rejects_bad_gamma(gamma):
    with pytest.raises(InvalidParameterError, match="gamma"):
        rbf_kernel(np.ones((2, 2)), np.ones((2, 2)), gamma)


@pytest.mark.parametrize(
    ("A", "match"),
    [
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([[1.0, np.inf]]), "NaN or infinity"),
        (np.ones(3), "2-D"),
        (np.empty((0, 2)), "empty"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[object(), 1]], dtype=object), "numeric"),
        (np.ones((2, 2), dtype=complex), "numeric"),
    ],
)
def test_rbf_kernel_rejects_bad_data_naming_it(A, match):
    with pytest.raises(InvalidDataError, match=match) as err:
        rbf_kernel(A, np.ones((2, 2)), 1.0)
    assert "A" in str(err.value)


def test_rbf_kernel_rejects_dimension_mismatch():
    with pytest.raises(DimensionMismatchError, match="d=2.*d=3"):
        rbf_kernel(np.ones((2, 2)), np.ones((2, 3)), 1.0)


def test_default_gamma_is_inverse_twice_dimension():
    assert default_gamma(16) == 1.0 / 32.0
    with pytest.raises(InvalidParameterError):
        default_gamma(0)


def test_chunked_kernel_mean_terms_equal_dense(rng):
    Z, X = rng.normal(size=(6, 3)), rng.normal(size=(101, 3))
    K = brute_rbf(Z, X, 0.4)
    c, M = kernel_mean_terms(Z, X, 0.4, with_moment=True, block_entries=50)  # many blocks
    assert_allclose(c, K.mean(axis=1), rtol=1e-12)
    assert_allclose(M, K @ X / X.shape[0], rtol=1e-11, atol=1e-14)


def test_chunked_self_term_equals_dense_mean(rng):
    X = rng.normal(size=(53, 2))
    expected = brute_rbf(X, X, 0.7).mean()
    assert_allclose(kernel_mean_self_term(X, 0.7, block_entries=100), expected, rtol=1e-12)
    assert_allclose(kernel_mean_self_term(X, 0.7), expected, rtol=1e-12)


def test_row_chunks_cover_range_with_bounded_blocks():
    chunks = list(row_chunks(1003, 10, block_entries=1000))
    assert [c.stop - c.start for c in chunks] == [100] * 10 + [3]
    assert chunks[0].start == 0 and chunks[-1].stop == 1003
