"""LogME: log of the maximum evidence of a Bayesian linear model on frozen features.

You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"
(ICML 2021). For each target column y (one-hot class indicator or regression output)
the model is ``y = F m + noise`` with prior ``m ~ N(0, I/alpha)`` and noise precision
``beta``; the log evidence is maximised over (alpha, beta) by MacKay's fixed point and
the score is the mean over columns of ``evidence / n``.

Why it is fast here: F is decomposed once (eigendecomposition of the smaller Gram
matrix, ``F^T F`` (d x d) when n >= d, ``F F^T`` (n x n) otherwise) and every column's
fixed point then runs on length-k vectors, all columns at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.exceptions import InvalidParameterError
from specs.transferability._checks import (
    check_class_labels,
    check_features,
    check_positive_int,
    check_targets,
    one_hot,
)

_TINY = np.finfo(np.float64).tiny


def spectral_projection(F: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project targets on the left singular vectors of F without forming them.

    Parameters
    ----------
    F : ndarray of shape (n, d), float64
    Y : ndarray of shape (n, t), float64

    Returns
    -------
    s : ndarray of shape (k,)
        Non-zero eigenvalues of ``F^T F`` (squared singular values), k = numerical rank.
    X : ndarray of shape (k, t)
        ``U^T Y`` with U the (n, k) left singular vectors.
    residual : ndarray of shape (t,)
        ``||Y||^2 - ||X||^2`` per column: the part of Y outside the span of F.
    """
    n, d = F.shape
    if n >= d:
        s, V = np.linalg.eigh(F.T @ F)
    else:
        s, V = np.linalg.eigh(F @ F.T)
    # Gram eigenvalues are accurate to ~eps * max(s); below that they are rounding noise.
    keep = s > s[-1] * max(n, d) * np.finfo(np.float64).eps
    s, V = s[keep], V[:, keep]
    # With the d x d Gram, U = F V / sqrt(s) is never formed: U^T Y = V^T (F^T Y) / sqrt(s).
    X = (V.T @ (F.T @ Y)) / np.sqrt(s)[:, None] if n >= d else V.T @ Y
    residual = np.maximum((Y * Y).sum(axis=0) - (X * X).sum(axis=0), 0.0)
    return s, X, residual


def _posterior_terms(
    s: np.ndarray, x2: np.ndarray, residual: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gamma, ||m||^2 and ||F m - y||^2 for each column at ratio t = alpha / beta."""
    denom = s[:, None] + t[None, :]
    gamma = (s[:, None] / denom).sum(axis=0)
    # Divide twice: denom**2 overflows when alpha/beta explodes (features without signal).
    m2 = (s[:, None] * x2 / denom / denom).sum(axis=0)
    res2 = ((t[None, :] / denom) ** 2 * x2).sum(axis=0) + residual
    return gamma, m2, res2


def maximum_evidence(
    s: np.ndarray,
    X: np.ndarray,
    residual: np.ndarray,
    n: int,
    d: int,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    epsilon: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run the fixed point on every column at once and return the maximised evidence.

    Parameters
    ----------
    s, X, residual : outputs of :func:`spectral_projection`, shapes (k,), (k, t), (t,)
    n, d : int
        Number of samples and feature dimension of F.
    tol : float
        Stop when every column's ``|t_new - t| / t <= tol`` with ``t = alpha / beta``.
    max_iter : int
        Upper bound on fixed-point iterations.
    epsilon : float
        Added to the denominators of the alpha/beta updates (thuml's code uses 1e-5);
        0 follows the paper exactly.

    Returns
    -------
    evidence : ndarray of shape (t,)
        Log evidence per column (not divided by n).
    alpha, beta : ndarray of shape (t,)
    n_iter : int
    """
    x2 = X * X
    n_cols = X.shape[1]
    alpha = np.ones(n_cols)
    beta = np.ones(n_cols)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        t = alpha / beta
        gamma, m2, res2 = _posterior_terms(s, x2, residual, t)
        alpha = gamma / np.maximum(m2 + epsilon, _TINY)
        beta = (n - gamma) / np.maximum(res2 + epsilon, _TINY)
        if np.all(np.abs(alpha / beta - t) <= tol * t):
            break
    # Evaluate at a consistent (alpha, beta, m): m is the posterior mean for alpha/beta.
    _, m2, res2 = _posterior_terms(s, x2, residual, alpha / beta)
    # Zero eigenvalues of F^T F (d - k of them) contribute log(alpha) each to log|A|.
    log_det = np.log(alpha[None, :] + beta[None, :] * s[:, None]).sum(axis=0)
    log_det += (d - s.shape[0]) * np.log(alpha)
    evidence = (
        0.5 * d * np.log(alpha)
        + 0.5 * n * np.log(beta)
        - 0.5 * log_det
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * n * np.log(2.0 * np.pi)
    )
    return evidence, alpha, beta, n_iter


class LogME:
    """LogME transferability estimator (higher is better).

    Parameters
    ----------
    regression : bool, default=False
        False: ``y`` holds class labels, scored one-hot per class. True: ``y`` holds
        real targets (n,) or (n, t), scored per output column.
    tol : float, default=1e-10
        Relative tolerance on ``alpha / beta``; tight because iterations cost O(k t).
    max_iter : int, default=100
    epsilon : float, default=0.0
        Denominator guard of the updates (0 = the paper's equations).

    Attributes
    ----------
    score_ : float
        Mean over columns of ``evidence / n``.
    evidence_ : ndarray of shape (t,)
        Per-column log evidence divided by n.
    alpha_, beta_ : ndarray of shape (t,)
        Prior and noise precisions at the maximum.
    n_iter_ : int
    """

    def __init__(
        self,
        *,
        regression: bool = False,
        tol: float = 1e-10,
        max_iter: int = 100,
        epsilon: float = 0.0,
    ) -> None:
        self.regression = regression
        self.tol = tol
        self.max_iter = max_iter
        self.epsilon = epsilon

    def fit(self, F: Any, y: Any) -> LogME:
        """Compute the score of features F (n, d) for labels or targets y (n,) / (n, t)."""
        if not (self.tol > 0):
            raise InvalidParameterError(f"tol must be > 0, got {self.tol!r}")
        if not (self.epsilon >= 0):
            raise InvalidParameterError(f"epsilon must be >= 0, got {self.epsilon!r}")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        F = check_features(F)
        n, d = F.shape
        if self.regression:
            Y = check_targets(y, n)
        else:
            codes, classes = check_class_labels(y, n)
            Y = one_hot(codes, classes.shape[0])
        s, X, residual = spectral_projection(F, Y)
        evidence, alpha, beta, n_iter = maximum_evidence(
            s, X, residual, n, d, tol=self.tol, max_iter=max_iter, epsilon=self.epsilon
        )
        self.evidence_ = evidence / n
        self.score_ = float(self.evidence_.mean())
        self.alpha_, self.beta_, self.n_iter_ = alpha, beta, n_iter
        return self


def logme(F: Any, y: Any, *, regression: bool = False) -> float:
    """LogME score of features F (n, d) for y; see :class:`LogME`."""
    return LogME(regression=regression).fit(F, y).score_
