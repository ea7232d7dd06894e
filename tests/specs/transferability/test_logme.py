"""LogME against an implementation written here from the paper's equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from specs.exceptions import DimensionMismatchError, InvalidDataError
from specs.transferability import LogME, logme


def reference_evidence(F: np.ndarray, y: np.ndarray, iters: int = 500) -> float:
    """MacKay's updates with dense linear algebra, one target column at a time.

    A = alpha I + beta F^T F, m = beta A^{-1} F^T y, gamma = sum beta s / (alpha + beta s)
    over the eigenvalues s of F^T F (from a full SVD of F), then the log evidence of
    You et al. (2021), Eq. 2, with log|A| by slogdet.
    """
    n, d = F.shape
    sv = np.linalg.svd(F, compute_uv=False)
    s = np.concatenate([sv**2, np.zeros(d - sv.shape[0])])
    alpha, beta = 1.0, 1.0
    for _ in range(iters):
        A = alpha * np.eye(d) + beta * F.T @ F
        m = beta * np.linalg.solve(A, F.T @ y)
        gamma = float((beta * s / (alpha + beta * s)).sum())
        new_alpha = gamma / float(m @ m)
        new_beta = (n - gamma) / float(((y - F @ m) ** 2).sum())
        done = abs(new_alpha / new_beta - alpha / beta) <= 1e-14 * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    A = alpha * np.eye(d) + beta * F.T @ F
    m = beta * np.linalg.solve(A, F.T @ y)
    logdet = np.linalg.slogdet(A)[1]
    ev = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * ((y - F @ m) ** 2).sum()
        - alpha / 2 * m @ m
        - logdet / 2
    )
    return float(ev / n)


def reference_logme(F: np.ndarray, Y: np.ndarray) -> float:
    return float(np.mean([reference_evidence(F, Y[:, j]) for j in range(Y.shape[1])]))


def _classification(rng: np.random.Generator, n: int, d: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, C, n)
    return rng.normal(size=(C, d))[y] + rng.normal(size=(n, d)), y


@pytest.mark.parametrize(("n", "d"), [(200, 12), (40, 60)])
def test_logme_classification_equals_reference(rng: np.random.Generator, n: int, d: int) -> None:
    F, y = _classification(rng, n, d, C=4)
    assert_allclose(logme(F, y), reference_logme(F, np.eye(4)[y]), rtol=1e-6)


@pytest.mark.parametrize("t", [1, 3])
def test_logme_regression_equals_reference(rng: np.random.Generator, t: int) -> None:
    F = rng.normal(size=(150, 10))
    Y = F @ rng.normal(size=(10, t)) + 0.5 * rng.normal(size=(150, t))
    target = Y[:, 0] if t == 1 else Y
    assert_allclose(logme(F, target, regression=True), reference_logme(F, Y), rtol=1e-6)


def test_logme_rank_deficient_features_equal_reference(rng: np.random.Generator) -> None:
    F, y = _classification(rng, 120, 8, C=3)
    F = np.hstack([F, F[:, :3] + F[:, 3:6]])  # 11 columns of rank 8
    assert_allclose(logme(F, y), reference_logme(F, np.eye(3)[y]), rtol=1e-6)


def test_logme_per_class_evidence_and_attributes(rng: np.random.Generator) -> None:
    F, y = _classification(rng, 100, 6, C=3)
    est = LogME().fit(F, y)
    expected = [reference_evidence(F, (y == c).astype(float)) for c in range(3)]
    assert_allclose(est.evidence_, expected, rtol=1e-6)
    assert est.alpha_.shape == est.beta_.shape == (3,)
    assert est.n_iter_ < 100


def test_logme_ignores_label_names_and_accepts_tensors(rng: np.random.Generator) -> None:
    F, y = _classification(rng, 90, 5, C=3)
    relabelled = np.array(["c", "a", "b"])[y]
    assert_allclose(logme(F, relabelled), logme(F, y), rtol=1e-12)
    assert_allclose(
        logme(torch.from_numpy(F).float(), torch.from_numpy(y)), logme(F.astype(np.float32), y), rtol=1e-12
    )


def test_logme_rejects_bad_input(rng: np.random.Generator) -> None:
    F = rng.normal(size=(10, 3))
    with pytest.raises(InvalidDataError, match="at least 2 classes"):
        logme(F, np.zeros(10))
    with pytest.raises(DimensionMismatchError, match="y has 9 labels"):
        logme(F, np.arange(9) % 2)
    F[0, 0] = np.nan
    with pytest.raises(InvalidDataError, match="F contains NaN"):
        logme(F, np.arange(10) % 2)
