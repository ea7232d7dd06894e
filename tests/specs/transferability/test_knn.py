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
def test_neighbours_equal_brute_force_across_blocks(rng: np.random.Generator, metric: str, k: int) -> None:
    F = rng.normal(size=(230, 12)) + 2.0
    # block_size 32 exercises diagonal, row-wise and column-wise merges and the filtered path.
    assert_array_equal(knn_neighbours(F, k=k, metric=metric, block_size=32), brute_neighbours(F, k, metric))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("tie_break", ["nearest", "smallest"])
def test_accuracy_equals_brute_force(rng: np.random.Generator, metric: str, tie_break: str) -> None:
    y = rng.integers(0, 4, 200)
    F = rng.normal(size=(4, 10))[y] * 0.8 + rng.normal(size=(200, 10))
    got = knn_accuracy(F, y, k=4, metric=metric, tie_break=tie_break, block_size=64)
    assert got == pytest.approx(brute_accuracy(F, y, 4, metric, tie_break), abs=1e-15)


def test_exact_distance_ties_fall_back_to_float64(rng: np.random.Generator) -> None:
    # Integer points: many neighbours at exactly equal distances, where float32
    # candidates cannot prove the order and the float64 fallback must decide.
    F = rng.integers(0, 3, size=(150, 4)).astype(float)
    assert_array_equal(knn_neighbours(F, k=5, block_size=40), brute_neighbours(F, 5, "euclidean"))


def test_tiny_sets_and_bad_k(rng: np.random.Generator) -> None:
    F = rng.normal(size=(6, 3))
    assert_array_equal(knn_neighbours(F, k=2), brute_neighbours(F, 2, "euclidean"))
    with pytest.raises(InvalidParameterError, match="k must be smaller"):
        knn_neighbours(F, k=6)
    with pytest.raises(InvalidParameterError, match="metric"):
        knn_neighbours(F, metric="manhattan")
