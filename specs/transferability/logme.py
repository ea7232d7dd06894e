"""LogME: log of the maximum evidence of a Bayesian linear model on frozen features.

You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"
(ICML 2021). For each target column y (one-hot class indicator or regression output)
the model is ``y = F m + noise`` with prior ``m ~ N(0, I/alpha)`` and noise precision
``beta``; the log evidence is maximised over (alpha, beta) by MacKay's fixed point and
the score is the mean over columns of ``evidence / n``.

Why it is fast here: for n > d, the d x d Gram ``F^T F`` is reduced to a tridiagonal T
(Householder, no eigenvectors: most of an eigendecomposition's cost is in forming them).
Its eigenvalues give the terms of the evidence that do not involve y, and every term that
does is a quadratic form ``z^T (T + t I)^-1 z``: an O(d) tridiagonal solve per column and
iteration. A rigorous bound on the Gram's rounding decides whether that is accurate to
``GRAM_TOL`` (:mod:`specs.transferability._logme_gram`); if not (F ill-conditioned at the t found, y almost
in the span of F, n <= d)
the exact path runs: a thin SVD (or the Gram's eigenvectors when n >= 2d), after which
every column's fixed point runs on length-k vectors, all columns at once.

Why it stays finite: F is divided by its largest entry (the score does not depend on
the scale of F), the fixed point runs on t = alpha / beta kept within a wide band around
the spectrum, the maximum may sit at either end of that band (n < d: noise precision
to infinity), and the evidence is written so no term is log(0) or inf - inf. Where the
evidence is unbounded (y exactly in the span of fewer than n directions of F) it raises
``InvalidDataError``.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.transferability._checks import (
    check_class_labels,
    check_features,
    check_positive_int,
    check_targets,
    one_hot,
    peak_exponent,
)
from specs.transferability._logme_gram import (
    T_SPAN,
    Imprecise,
    certify,
    eigen_log_det,
    eigen_sums,
    reduce_gram,
)

_EPS = np.finfo(np.float64).eps


def spectral_projection(F: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project targets on the left singular vectors of F (thin SVD; Gram if n >= 2 d).

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
        ``||Y - U X||^2`` per column: the part of Y outside the span of F, set to 0
        where it is at the level of rounding.
    """
    n, d = F.shape
    norm2 = (Y * Y).sum(axis=0)
    if n >= 2 * d:
        # Tall F: the d x d Gram is cheap and its rounding (~eps * s_max) only trims
        # directions far below the noise of n >> d samples.
        s, V = np.linalg.eigh(F.T @ F)
        keep = s > s[-1] * max(n, d) * _EPS if s[-1] > 0 else np.zeros(s.shape, dtype=bool)
        s, V = s[keep], V[:, keep]
        # U = F V / sqrt(s) is never formed: U^T Y = V^T (F^T Y) / sqrt(s).
        X = (V.T @ (F.T @ Y)) / np.sqrt(s)[:, None]
        residual = norm2 - (X * X).sum(axis=0)
        rounding = 8 * max(n, d) * _EPS * norm2
    else:
        # A thin SVD, not the Gram: singular values are accurate to ~eps * sigma_max, the
        # Gram's eigenvalues only to ~eps * sigma_max^2, which threw away real directions of
        # layer states that share one dominant component.
        U, sigma, _ = np.linalg.svd(F, full_matrices=False)
        keep = sigma > sigma[0] * max(n, d) * _EPS if sigma[0] > 0 else np.zeros(sigma.shape, dtype=bool)
        U, s = U[:, keep], sigma[keep] ** 2
        X = U.T @ Y
        R = Y - U @ X  # direct, not ||Y||^2 - ||X||^2: a zero residual comes out as ~eps^2
        residual = (R * R).sum(axis=0)
        rounding = (8 * max(n, d) * _EPS) ** 2 * norm2
    # Exactly zero where only rounding is left: maximum_evidence tells that case apart.
    return s, X, np.where(residual <= rounding, 0.0, residual)


class _EvidenceOptions(TypedDict):
    """The fixed point's settings, passed alike to both routes."""

    tol: float
    max_iter: int
    epsilon: float


class _Projected:
    """Targets by their coordinates on F's singular directions, the eigenvalues s (k,) of
    ``F^T F``, ``x2 = X**2`` (k, t) and the residual (t,)."""

    def __init__(self, s: np.ndarray, x2: np.ndarray, residual: np.ndarray) -> None:
        self.s, self.x2, self.residual = s, x2, residual

    def bounds(self) -> tuple[float, float]:
        """The band t = alpha / beta is kept in (see ``T_SPAN``)."""
        return float(self.s.min()) / T_SPAN, float(self.s.max()) * T_SPAN

    def moments(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per column at ratio t: ``m2 = ||m||^2``, ``res2 = ||F m - y||^2`` and ``q = res2 + t m2``."""
        s = self.s
        denom = s[:, None] + t[None, :]
        w = t[None, :] / denom
        # Divide twice: denom**2 overflows when alpha/beta explodes (features without signal).
        m2 = (s[:, None] * self.x2 / denom / denom).sum(axis=0)
        res2 = (w * w * self.x2).sum(axis=0) + self.residual
        q = (w * self.x2).sum(axis=0) + self.residual
        return m2, res2, q

    def spectral_sums(self, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return eigen_sums(self.s, t, n)

    def log_det(self, t: np.ndarray) -> np.ndarray:
        return eigen_log_det(self.s, t)


def _updates(
    targets: Any,
    t: np.ndarray,
    n: int,
    eps_m: float,
    eps_r: float,
) -> tuple[np.ndarray, np.ndarray]:
    """MacKay's alpha and beta for each column at ratio t = alpha / beta."""
    gamma, rest = targets.spectral_sums(t, n)
    m2, res2, _ = targets.moments(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return gamma / (m2 + eps_m), rest / (res2 + eps_r)


def _log_evidence(log_det: np.ndarray, q: np.ndarray, beta: np.ndarray, n: int) -> np.ndarray:
    """Log evidence at (alpha, beta) = (t beta, beta), with m the posterior mean for t.

    Written with t only where alpha appears: ``d/2 log alpha - 1/2 log|A|`` is
    ``-1/2 sum log(1 + s/t)`` (``log_det``; the d - k zero eigenvalues cancel) and
    ``beta ||F m - y||^2 + alpha ||m||^2 = beta q`` with ``q = sum t x2 / (s + t) + residual``,
    so no term is log(0) or inf - inf when alpha/beta runs to 0 or to infinity.
    """
    return 0.5 * n * np.log(beta) - 0.5 * beta * q - 0.5 * log_det - 0.5 * n * np.log(2.0 * np.pi)


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
    feature_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run the fixed point on every column at once and return the maximised evidence.

    Parameters
    ----------
    s, X, residual : outputs of :func:`spectral_projection`, shapes (k,), (k, t), (t,)
    n, d : int
        Number of samples and feature dimension of F (the d - k zero eigenvalues cancel
        out of the evidence, so only n is used).
    tol : float
        Stop when every column's ``|t_new - t| / t <= tol`` with ``t = alpha / beta``.
    max_iter : int
        Upper bound on fixed-point iterations.
    epsilon : float
        Added to the denominators of the alpha/beta updates (thuml's code uses 1e-5);
        0 follows the paper exactly.
    feature_scale : float
        ``s`` and ``X`` come from ``F / feature_scale``; ``alpha`` and ``epsilon`` refer to
        the unscaled F (the evidence itself does not depend on the scale of F).

    Returns
    -------
    evidence : ndarray of shape (t,)
        Log evidence per column (not divided by n).
    alpha, beta : ndarray of shape (t,)
    n_iter : int

    Raises
    ------
    InvalidDataError
        With ``epsilon=0``, where the evidence is unbounded: a column of y is all zeros,
        or lies exactly in the span of k < n directions of F (e.g. duplicate rows of F
        with equal targets), so a noise-free fit has infinite likelihood.
    """
    x2 = X * X
    if s.shape[0] == n:  # U spans R^n: what the subtraction left is rounding, and it would cap beta
        residual = np.zeros_like(residual)
    _check_bounded(s.shape[0], x2, residual, n, epsilon)
    if s.shape[0] == 0:  # F == 0: m = 0 whatever alpha, only beta matters
        beta = n / (residual + epsilon) if epsilon else n / residual
        evidence = 0.5 * n * np.log(beta) - 0.5 * beta * residual - 0.5 * n * np.log(2.0 * np.pi)
        return evidence, np.full(X.shape[1], np.inf), beta, 0
    evidence, t, beta, n_iter, _ = _maximise(
        _Projected(s, x2, residual),
        X.shape[1],
        n,
        tol=tol,
        max_iter=max_iter,
        epsilon=epsilon,
        feature_scale=feature_scale,
    )
    return evidence, _alpha(t, beta, feature_scale), beta, n_iter


def _alpha(t: np.ndarray, beta: np.ndarray, feature_scale: float) -> np.ndarray:
    """alpha of the unscaled F: ``t beta feature_scale^2`` (inf where that overflows)."""
    with np.errstate(over="ignore"):
        return t * beta * (feature_scale * feature_scale)


def _maximise(
    targets: Any,
    n_cols: int,
    n: int,
    *,
    tol: float,
    max_iter: int,
    epsilon: float,
    feature_scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """The fixed point and its edges for either kind of targets.

    Returns the evidence, t = alpha / beta of the scaled F, beta, the iterations and the
    smallest t visited (per column).
    """
    c2 = feature_scale * feature_scale  # may overflow to inf for F ~ 1e160: only t0 and alpha_ see it
    eps_m, eps_r = (
        (epsilon * c2 if epsilon else 0.0),
        epsilon,
    )  # m of the scaled F is feature_scale times larger
    bounds = targets.bounds()
    with np.errstate(divide="ignore", over="ignore"):
        t0 = np.clip(np.full(n_cols, np.float64(1.0) / c2), *bounds)  # alpha = beta = 1 for the unscaled F
    t, n_iter, t_low = _fixed_point(targets, t0, n, bounds, tol=tol, max_iter=max_iter, eps=(eps_m, eps_r))
    evidence, beta = _evidence_at(targets, t, n, eps_m, eps_r)
    if epsilon == 0:
        # MacKay creeps towards a maximum at t -> 0 or t -> inf (no signal) and stops at
        # max_iter short of it, at a value that depends on the scale of F: take the limits too.
        for edge in bounds:
            t_edge = np.full_like(t, edge)
            ev_edge, beta_edge = _evidence_at(targets, t_edge, n, eps_m, eps_r)
            better = ev_edge > evidence
            t, evidence, beta = (
                np.where(better, t_edge, t),
                np.where(better, ev_edge, evidence),
                np.where(better, beta_edge, beta),
            )
            t_low = np.minimum(t_low, t)
    return evidence, t, beta, n_iter, t_low


def _fixed_point(
    targets: Any,
    t: np.ndarray,
    n: int,
    bounds: tuple[float, float],
    *,
    tol: float,
    max_iter: int,
    eps: tuple[float, float],
) -> tuple[np.ndarray, int, np.ndarray]:
    """MacKay's updates on t = alpha / beta, kept within ``bounds``; returns (t, n_iter, smallest t)."""
    n_iter = 0
    t_low = t
    while n_iter < max_iter:
        n_iter += 1
        alpha, beta = _updates(targets, t, n, *eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = alpha / beta
        # inf (m = 0: no signal) and nan (0/0 at the same limit) both mean "as large as allowed"
        t_new = np.clip(np.where(np.isnan(ratio), bounds[1], ratio), *bounds)
        done = bool(np.all(np.abs(t_new - t) <= tol * t))
        t = t_new
        t_low = np.minimum(t_low, t)
        if done:
            break
    return t, n_iter, t_low


def _evidence_at(
    targets: Any, t: np.ndarray, n: int, eps_m: float, eps_r: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log evidence and beta at ratio t: MacKay's beta with a guard, else the best beta for t."""
    m2, res2, q = targets.moments(t)
    if eps_r:
        _, rest = targets.spectral_sums(t, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = rest / (res2 + eps_r)
    else:
        # Equal to MacKay's beta at the fixed point, and finite where the update's res2 underflows.
        beta = n / q
    return _log_evidence(targets.log_det(t), q, beta, n), beta


def _tridiagonal_evidence(
    F: np.ndarray,
    Y: np.ndarray,
    scale: float,
    *,
    tol: float,
    max_iter: int,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`maximum_evidence` through the tridiagonal of the Gram (n > d); raises ``Imprecise``."""
    n = F.shape[0]
    targets, delta = reduce_gram(F, Y, scale)
    evidence, t, beta, n_iter, t_low = _maximise(
        targets, Y.shape[1], n, tol=tol, max_iter=max_iter, epsilon=epsilon, feature_scale=scale
    )
    m2, _, q = targets.moments(t)
    certify(delta, targets, t_low, m2, q, n)
    return evidence, _alpha(t, beta, scale), beta, n_iter


def _check_bounded(k: int, x2: np.ndarray, residual: np.ndarray, n: int, epsilon: float) -> None:
    if epsilon > 0:  # the guard bounds beta by (n - gamma) / epsilon
        return
    zero = np.flatnonzero(x2.sum(axis=0) + residual == 0)
    if zero.size:
        raise InvalidDataError(
            f"y column {int(zero[0])} is all zeros: LogME is unbounded (infinite noise precision)"
        )
    exact = np.flatnonzero(residual == 0)
    if k < n and exact.size:
        raise InvalidDataError(
            f"y column {int(exact[0])} lies exactly in the span of F's {k} < n = {n} directions "
            "(duplicate rows of F with equal targets?): LogME is unbounded; pass epsilon > 0 to regularise"
        )


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
        F = check_features(F, float32_ok=True, check_finite=False)  # checked by its extremes below
        n, d = F.shape
        if self.regression:
            Y = check_targets(y, n)
        else:
            codes, classes = check_class_labels(y, n)
            Y = one_hot(codes, classes.shape[0])
        # LogME does not depend on the scale of F (alpha absorbs it); dividing by max |F|
        # keeps F^T F and the updates far from overflow and underflow.
        # A power of two: dividing by it is exact, so the routes see the same numbers.
        shift = peak_exponent(F)  # checks finiteness too; on float32 if F is
        F = F.astype(np.float64, copy=False)
        scale = 1.0 if shift is None else float(np.ldexp(1.0, shift))  # all-zero F: nothing to scale
        options = _EvidenceOptions(tol=self.tol, max_iter=max_iter, epsilon=self.epsilon)
        try:
            if n <= d:
                raise Imprecise  # t -> 0 is typical there, where the Gram's rounding matters
            evidence, alpha, beta, n_iter = _tridiagonal_evidence(F, Y, scale, **options)
        except Imprecise:
            s, X, residual = spectral_projection(F / scale, Y)
            evidence, alpha, beta, n_iter = maximum_evidence(
                s, X, residual, n, d, feature_scale=scale, **options
            )
        self.evidence_ = evidence / n
        self.score_ = float(self.evidence_.mean())
        self.alpha_, self.beta_, self.n_iter_ = alpha, beta, n_iter
        return self


def logme(F: Any, y: Any, *, regression: bool = False) -> float:
    """LogME score of features F (n, d) for y; see :class:`LogME`."""
    return LogME(regression=regression).fit(F, y).score_
