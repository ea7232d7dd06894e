"""Leave-one-out kNN against a brute-force float64 computation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy.spatial.distance import cdist

from specs.exceptions import InvalidParameterError
from specs.transferability import knn_accuracy, knn_neighbours


def brute_neighbours(F: np.ndarray, k: int, metric: str) -> np.ndarray:
    D = cdist(F, F, metric="sqeuclidean" if metric == "euclidean" else "cosine")
    np.fill_diagonal(D, np.inf)
    idx = np.broadcast_to(np.arange(F.shape[0]), D.shape)
    return np.lexsort((idx, D), axis=1)[:, :k]


def brute_accuracy(F: np.ndarray, y: np.ndarray, k: int, metric: str, tie_break: str) -> float:
    nbrs = brute_neighbours(F, k, metric)
    hits = 0
    for i in range(F.shape[0]):
        labels = [int(y[j]) for j in nbrs[i]]
        counts = Counter(labels)
        top = max(counts.values())
        tied = [c for c in counts if counts[c] == top]
        pred = min(tied) if tie_break == "smallest" else next(c for c in labels if c in tied)
        hits += pred == y[i]
    return hits / F.shape[0]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("block_size", [32, 230, 1024])
def test_neighbours_equal_brute_force_across_blocks(rng: np.random.Generator, metric: str, k: int, dtype: type,
                                                    block_size: int) -> None:
    F = (rng.normal(size=(230, 12)) + 2.0).astype(dtype)
    # block_size 32 exercises diagonal, row-wise and column-wise merges and the filtered
    # path; 230 and 1024 the single-block route (one product, one selection).
    assert_array_equal(knn_neighbours(F, k=k, metric=metric, block_size=block_size),
                       brute_neighbours(F.astype(np.float64), k, metric))


@pytest.mark.parametrize("n", [12, 40, 101, 1003])
def test_single_block_widths_equal_brute_force(rng: np.random.Generator, n: int) -> None:
    # Widths below 16 (k + 3) partition whole rows; others are cut into slices with a
    # remainder that no slice covers (1003 = 16 * 62 + 11).
    F = rng.normal(size=(n, 7)) * rng.uniform(0.5, 2.0, size=7)
    assert_array_equal(knn_neighbours(F, k=3), brute_neighbours(F, 3, "euclidean"))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("tie_break", ["nearest", "smallest"])
def test_accuracy_equals_brute_force(rng: np.random.Generator, metric: str, tie_break: str) -> None:
    y = rng.integers(0, 4, 200)
    F = rng.normal(size=(4, 10))[y] * 0.8 + rng.normal(size=(200, 10))
    got = knn_accuracy(F, y, k=4, metric=metric, tie_break=tie_break, block_size=64)
    assert got == pytest.approx(brute_accuracy(F, y, 4, metric, tie_break), abs=1e-15)


@pytest.mark.parametrize("block_size", [40, 1024])
def test_exact_distance_ties_fall_back_to_float64(rng: np.random.Generator, block_size: int) -> None:
    # Integer points: many neighbours at exactly equal distances, where float32
    # candidates cannot prove the order and the float64 fallback must decide (and, in
    # one block, many keys tie with a row's selection threshold).
    F = rng.integers(0, 3, size=(150, 4)).astype(float)
    assert_array_equal(knn_neighbours(F, k=5, block_size=block_size), brute_neighbours(F, 5, "euclidean"))


def test_tiny_sets_and_bad_k(rng: np.random.Generator) -> None:
    F = rng.normal(size=(6, 3))
    assert_array_equal(knn_neighbours(F, k=2), brute_neighbours(F, 2, "euclidean"))
    with pytest.raises(InvalidParameterError, match="k must be smaller"):
        knn_neighbours(F, k=6)
    with pytest.raises(InvalidParameterError, match="metric"):
        knn_neighbours(F, metric="manhattan")


def float32_neighbours(F: np.ndarray, k: int, metric: str) -> np.ndarray:
    """The k nearest by keys computed the fast way in float32: ||x_j||^2 / 2 - <x_i, x_j>."""
    X = F / np.linalg.norm(F, axis=1, keepdims=True) if metric == "cosine" else F
    X32 = X.astype(np.float32)
    keys = (0.5 * (X32 * X32).sum(axis=1))[None, :] * (metric == "euclidean") - X32 @ X32.T
    np.fill_diagonal(keys, np.inf)
    return np.argsort(keys, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_near_ties_below_float32_resolution_follow_float64(rng: np.random.Generator, metric: str, dtype: type) -> None:
    # Twins 1e-3 apart, 300 away from the origin: from every other row the two lie at
    # distances that differ far below the float32 rounding of the keys (so the float32
    # order of the pair is a coin flip) yet far above float64's. Taking a row's order from
    # float32 without proof would disagree with brute force.
    base = rng.normal(size=(60, 6)) + 300.0 * rng.normal(size=6)
    # float32 input is used as it is (its values are exact in float64): same near-ties.
    F = np.vstack([base, base + 1e-3 * rng.normal(size=base.shape)]).astype(dtype)
    expected = brute_neighbours(F.astype(np.float64), 4, metric)
    assert (float32_neighbours(F, 4, metric) != expected).any()  # the test has teeth
    assert_array_equal(knn_neighbours(F, k=4, metric=metric, block_size=32), expected)
    assert_array_equal(knn_neighbours(F, k=4, metric=metric), expected)


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1e30, 1e200])
def test_features_beyond_float32_range_keep_their_order(rng: np.random.Generator, scale: float) -> None:
    # The float32 product works on F scaled by a power of two; without that, 1e30 squares to
    # inf and 1e-30 to 0 in float32. The order is that of F / scale.
    F = rng.normal(size=(120, 5))
    assert_array_equal(knn_neighbours(F * scale, k=3, block_size=32), brute_neighbours(F, 3, "euclidean"))
