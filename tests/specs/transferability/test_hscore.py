"""H-score and regularised H-score against brute-force covariances and sklearn's Ledoit-Wolf."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.covariance import ledoit_wolf, ledoit_wolf_shrinkage

from specs.exceptions import InvalidParameterError
from specs.transferability import hscore, regularized_hscore
from specs.transferability import ledoit_wolf_shrinkage as our_shrinkage


def _data(rng: np.random.Generator, n: int = 150, d: int = 8, C: int = 3) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, C, n)
    return rng.normal(size=(C, d))[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2, d), y


def _class_mean_matrix(F: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row i = mean feature vector of the class of sample i (E[f | y] per sample)."""
    G = np.empty_like(F)
    for c in np.unique(y):
        G[y == c] = F[y == c].mean(axis=0)
    return G


def test_hscore_equals_brute_force(rng: np.random.Generator) -> None:
    F, y = _data(rng)
    cov_f = np.cov(F.T, bias=True)
    cov_g = np.cov(_class_mean_matrix(F, y).T, bias=True)
    assert_allclose(hscore(F, y), np.trace(np.linalg.pinv(cov_f) @ cov_g), rtol=1e-9)


def test_shrinkage_equals_sklearn(rng: np.random.Generator) -> None:
    F, _ = _data(rng, n=40, d=30)
    Fc = F - F.mean(axis=0)
    assert_allclose(our_shrinkage(Fc), ledoit_wolf_shrinkage(F), rtol=1e-10)


def test_regularized_hscore_equals_brute_force(rng: np.random.Generator) -> None:
    F, y = _data(rng, n=40, d=30)  # d close to n: the plain covariance is ill-conditioned
    shrunk, a = ledoit_wolf(F)
    cov_g = np.cov(_class_mean_matrix(F, y).T, bias=True)
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - a) * cov_g))
    assert 0 < a < 1
    assert_allclose(regularized_hscore(F, y), expected, rtol=1e-9)


def test_zero_shrinkage_is_plain_hscore(rng: np.random.Generator) -> None:
    F, y = _data(rng)
    assert_allclose(regularized_hscore(F, y, shrinkage=0.0), hscore(F, y), rtol=1e-9)


def test_full_shrinkage_uses_only_the_trace(rng: np.random.Generator) -> None:
    F, y = _data(rng)
    assert regularized_hscore(F, y, shrinkage=1.0) == 0.0
    with pytest.raises(InvalidParameterError, match="shrinkage"):
        regularized_hscore(F, y, shrinkage=1.5)
