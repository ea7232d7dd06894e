"""H-score and its shrinkage-regularised variant.

H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task
Transfer Learning", ICIP 2019): ``tr(cov(f)^+ cov(E[f | y]))`` - between-class spread of
the features measured in the metric of their total covariance. With d close to n the
sample covariance is ill-conditioned and the score explodes, so Ibrahim et al. ("Newer
is not always better: rethinking transferability metrics", ICLR 2023 / arXiv 2022)
replace it by the Ledoit-Wolf shrinkage estimate
``cov_a = (1 - a) S + a (tr(S) / d) I`` and score ``tr(cov_a^{-1} (1 - a) cov(E[f | y]))``.

Both covariances use the 1/n (maximum-likelihood) normalisation; transformer-ranker 0.2.0
divides the class-mean covariance by n - 1 instead, so its values are ours * n / (n - 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from specs.exceptions import InvalidParameterError
from specs.transferability._checks import check_class_labels, check_features


def _centred_class_means(F: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return centred features (n, d), class weights p (C,) and centred class means (C, d)."""
    F = check_features(F)
    codes, classes = check_class_labels(y, F.shape[0])
    Fc = F - F.mean(axis=0)
    counts = np.bincount(codes, minlength=classes.shape[0]).astype(np.float64)
    sums = np.zeros((classes.shape[0], F.shape[1]))
    np.add.at(sums, codes, Fc)
    return Fc, counts / F.shape[0], sums / counts[:, None]


def ledoit_wolf_shrinkage(Fc: np.ndarray, S: np.ndarray | None = None) -> float:
    """Ledoit-Wolf (2004) optimal shrinkage intensity towards ``(tr(S)/d) I``.

    Parameters
    ----------
    Fc : ndarray of shape (n, d)
        Centred features.
    S : ndarray of shape (d, d), optional
        ``Fc^T Fc / n`` if the caller already has it.

    Returns
    -------
    float in [0, 1]
        ``min(b2, d2) / d2`` with ``d2 = ||S - mu I||_F^2 / d`` and
        ``b2 = sum_k ||x_k x_k^T - S||_F^2 / (n^2 d)``.
    """
    n, d = Fc.shape
    if S is None:
        S = Fc.T @ Fc / n
    mu = np.trace(S) / d
    s_fro2 = float((S * S).sum())
    d2 = (s_fro2 - d * mu**2) / d
    # sum_k ||x_k x_k^T||_F^2 = sum_k ||x_k||^4: no (d, d) product of squared features needed.
    row_norm4 = float((np.einsum("ij,ij->i", Fc, Fc) ** 2).sum())
    b2 = (row_norm4 - n * s_fro2) / (n**2 * d)
    if d2 <= 0.0:
        return 0.0
    return float(min(max(b2, 0.0), d2) / d2)


def hscore(F: Any, y: Any, *, rcond: float = 1e-12) -> float:
    """H-score ``tr(cov(f)^+ cov(E[f|y]))`` (higher is better).

    Parameters
    ----------
    F : array-like of shape (n, d)
    y : array-like of shape (n,)
        Class labels.
    rcond : float, default=1e-12
        Eigenvalues of cov(f) below ``rcond * max`` are treated as zero (pseudo-inverse).

    Returns
    -------
    float
    """
    Fc, p, means = _centred_class_means(F, y)
    w, V = np.linalg.eigh(Fc.T @ Fc / Fc.shape[0])
    keep = w > rcond * w[-1]
    proj = (means @ V[:, keep]) / np.sqrt(w[keep])
    return float((p[:, None] * proj * proj).sum())


def regularized_hscore(F: Any, y: Any, *, shrinkage: float | None = None) -> float:
    """Shrinkage-regularised H-score of Ibrahim et al. (higher is better).

    Parameters
    ----------
    F : array-like of shape (n, d)
    y : array-like of shape (n,)
        Class labels.
    shrinkage : float in [0, 1] or None, default=None
        None estimates the Ledoit-Wolf intensity from F.

    Returns
    -------
    float
    """
    Fc, p, means = _centred_class_means(F, y)
    n, d = Fc.shape
    S = Fc.T @ Fc / n
    if shrinkage is None:
        a = ledoit_wolf_shrinkage(Fc, S)
    elif 0.0 <= shrinkage <= 1.0:
        a = float(shrinkage)
    else:
        raise InvalidParameterError(f"shrinkage must lie in [0, 1] or be None, got {shrinkage!r}")
    mu = np.trace(S) / d
    cov_a = (1.0 - a) * S
    cov_a[np.diag_indices(d)] += a * mu
    G = np.sqrt(p)[:, None] * means
    if a > 0.0:
        # Shrinkage makes cov_a positive definite: a Cholesky solve replaces the SVD pinv.
        solved = scipy.linalg.cho_solve(scipy.linalg.cho_factor(cov_a, lower=True), G.T)
    else:
        solved = np.linalg.pinv(cov_a, rcond=1e-12, hermitian=True) @ G.T
    return float((1.0 - a) * (G.T * solved).sum())
