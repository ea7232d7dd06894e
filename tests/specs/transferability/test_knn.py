"""Leave-one-out kNN against a brute-force float64 computation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy.spatial.distance import cdist

from specs.exceptions import InvalidDataError, InvalidParameterError
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
def test_neighbours_equal_brute_force_across_blocks(
    rng: np.random.Generator, metric: str, k: int, dtype: type, block_size: int
) -> None:
    F = (rng.normal(size=(230, 12)) + 2.0).astype(dtype)
    # block_size 32 exercises diagonal, row-wise and column-wise merges and the filtered
    # path; 230 and 1024 the single-block route (one product, one selection).
    assert_array_equal(
        knn_neighbours(F, k=k, metric=metric, block_size=block_size),
        brute_neighbours(F.astype(np.float64), k, metric),
    )


@pytest.mark.parametrize("n", [12, 40, 101, 174, 1003])
def test_single_block_widths_equal_brute_force(rng: np.random.Generator, n: int) -> None:
    # Below 40 rows (20 blocks of 2) columns are partitioned whole; others are cut into
    # 20 row blocks, the last taking the remainder (101 = 20 * 5 + 1, 174 = 20 * 8 + 14:
    # more than a block's rows, 1003 = 20 * 50 + 3).
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
def test_near_ties_below_float32_resolution_follow_float64(
    rng: np.random.Generator, metric: str, dtype: type
) -> None:
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


def gram_order(F: np.ndarray, k: int) -> np.ndarray:
    """The k nearest by float64 keys ||x_j||^2 / 2 - <x_i, x_j> (what a Gram-only exact path uses)."""
    keys = 0.5 * (F * F).sum(axis=1)[None, :] - F @ F.T
    np.fill_diagonal(keys, np.inf)
    return np.argsort(keys, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("block_size", [32, 1024])
def test_near_coincident_points_are_ordered_by_their_differences(
    rng: np.random.Generator, block_size: int
) -> None:
    # 80 points within 1e-7 of one point 1e3 from the origin: float64 keys built from norms
    # and a product cancel (error ~1e-10 of squared distances ~1e-14), a difference does not.
    F = 1e3 * rng.normal(size=6) + 1e-7 * rng.normal(size=(80, 6))
    expected = brute_neighbours(F, 3, "euclidean")
    assert (gram_order(F, 3) != expected).any()  # the test has teeth
    assert_array_equal(knn_neighbours(F, k=3, block_size=block_size), expected)


def exact_cosine_neighbours(F: np.ndarray, k: int) -> np.ndarray:
    """Integer features: order by the exact rational -sign(s) s^2 / (|x_i|^2 |x_j|^2), then index."""
    from fractions import Fraction

    G = [[int(v) for v in row] for row in F]
    norms = [sum(v * v for v in row) for row in G]
    out = []
    for i, a in enumerate(G):
        keys = []
        for j, b in enumerate(G):
            if j == i:
                continue
            s = sum(p * q for p, q in zip(a, b, strict=True))
            cos2 = Fraction(s * abs(s), norms[i] * norms[j]) if norms[i] and norms[j] else Fraction(0)
            keys.append((-cos2, j))
        out.append([j for _, j in sorted(keys)[:k]])
    return np.array(out)


@pytest.mark.parametrize("block_size", [32, 1024])
def test_equal_cosines_on_integer_data_tie_and_the_index_decides(
    rng: np.random.Generator, block_size: int
) -> None:
    # Small non-negative integers: many pairs share a cosine exactly (and a zero row has
    # cosine 0 with all), which normalised float rows break by rounding, not by index.
    F = rng.integers(0, 3, size=(120, 5)).astype(float)
    F[7] = 0.0
    expected = exact_cosine_neighbours(F, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        D = (
            1.0
            - (F / np.linalg.norm(F, axis=1, keepdims=True))
            @ (F / np.linalg.norm(F, axis=1, keepdims=True)).T
        )
    D = np.nan_to_num(D, nan=1.0)
    np.fill_diagonal(D, np.inf)
    rounded = np.lexsort((np.broadcast_to(np.arange(120), D.shape), D), axis=1)[:, :4]
    assert (rounded != expected).any()  # the test has teeth
    assert_array_equal(knn_neighbours(F, k=4, metric="cosine", block_size=block_size), expected)


@pytest.mark.parametrize("block_size", [8, 1024])
def test_nan_or_inf_features_are_refused(rng: np.random.Generator, block_size: int) -> None:
    # Euclidean features reach the float32 product unchecked: its norms must catch them.
    F = rng.normal(size=(30, 4))
    for bad in (np.nan, np.inf, -np.inf):
        G = F.copy()
        G[3, 2] = bad
        for metric in ("euclidean", "cosine"):
            with pytest.raises(InvalidDataError, match="F contains NaN or infinite"):
                knn_accuracy(G, np.arange(30) % 2, metric=metric, block_size=block_size)


@pytest.mark.parametrize("block_size", [8, 1024])
def test_all_zero_features_tie_everywhere(block_size: int) -> None:
    F = np.zeros((20, 3))
    expected = np.array([[j for j in range(20) if j != i][:3] for i in range(20)])
    assert_array_equal(knn_neighbours(F, k=3, block_size=block_size), expected)


def test_mass_ties_beyond_the_difference_cap_stay_exact(rng: np.random.Generator) -> None:
    # Two distinct points repeated 300 times each: a row's near-tied set (299 exact
    # duplicates) exceeds the cap for difference keys; integer keys are exact anyway.
    F = np.zeros((600, 3))
    F[:, 0] = rng.integers(0, 2, size=600)
    assert_array_equal(knn_neighbours(F, k=3), brute_neighbours(F, 3, "euclidean"))


@pytest.mark.parametrize("tie_break", ["nearest", "smallest"])
@pytest.mark.parametrize("block_size", [32, 1024])
def test_accuracy_skips_only_rows_whose_vote_is_settled(
    rng: np.random.Generator, tie_break: str, block_size: int
) -> None:
    # The twins of the near-tie test, labelled so that some twin pairs agree (their float32
    # order may stay wrong: the vote is settled) and others disagree (it must be exact).
    base = rng.normal(size=(80, 6)) + 300.0 * rng.normal(size=6)
    F = np.vstack([base, base + 1e-3 * rng.normal(size=base.shape)])
    y = np.concatenate([rng.integers(0, 3, 80), rng.integers(0, 3, 80)])
    y[80:120] = y[:40]  # half the pairs share a label
    assert (float32_neighbours(F, 3, "euclidean") != brute_neighbours(F, 3, "euclidean")).any()
    got = knn_accuracy(F, y, k=3, tie_break=tie_break, block_size=block_size)
    assert got == pytest.approx(brute_accuracy(F, y, 3, "euclidean", tie_break), abs=1e-15)


def test_cosine_rows_at_any_scale_keep_their_order(rng: np.random.Generator) -> None:
    # Each row scaled by 10^-200 ... 10^200: squares and products over- or underflow
    # float64 unless each row is brought to a common range first; cosines do not change.
    F = rng.normal(size=(120, 5))
    scaled = F * 10.0 ** rng.uniform(-200, 200, size=(120, 1))
    for block_size in (32, 1024):
        assert_array_equal(
            knn_neighbours(scaled, k=3, metric="cosine", block_size=block_size),
            brute_neighbours(F, 3, "cosine"),
        )
