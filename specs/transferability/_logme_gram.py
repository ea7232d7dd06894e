"""LogME's fast route for n > d: the d x d Gram reduced to a tridiagonal, with an accuracy certificate.

``F^T F`` is reduced to a tridiagonal T by Householder reflections (``dsytrd``; no
eigenvectors are formed: most of an eigendecomposition's cost is in forming them). Its
eigenvalues (``dsterf``) give the terms of the evidence that do not involve y; every term
that does is a quadratic form ``z^T (T + t I)^-1 z``, one O(d) tridiagonal solve
(``dptsv``) per column and iteration. A rigorous bound on the Gram's rounding decides
whether the result is accurate to ``GRAM_TOL``; when it cannot be certified ``Imprecise``
is raised and :mod:`specs.transferability.logme` takes its exact (SVD) route.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.lapack as lapack

_EPS = np.finfo(np.float64).eps
# The tridiagonal route is used when its worst-case error on every column's evidence / n
# is below this (the errors actually seen are ~1e-13).
GRAM_TOL = 1e-8
# ... and when every column keeps at least this share of ||y||^2 outside the span of F:
# q = ||y||^2 - z^T (T + t)^-1 z is then free of cancellation.
_MIN_RESIDUAL_SHARE = 1e-4


class Imprecise(Exception):
    """The tridiagonal route cannot certify its accuracy: use the exact route."""


class Tridiagonal:
    """Targets against the tridiagonal ``T = Q^T F^T F Q``: ``Z = Q^T F^T Y`` (d, t).

    With ``u = (T + t I)^-1 z``: ``m2 = ||u||^2``, ``q = ||y||^2 - z^T u`` and
    ``res2 = q - t m2`` (the eigen-sums of ``logme._Projected``, without eigenvectors).
    """

    def __init__(self, diag: np.ndarray, off: np.ndarray, Z: np.ndarray, norm2: np.ndarray) -> None:
        self.diag, self.off, self.Z, self.norm2 = diag, off, Z, norm2

    def solve(self, t: np.ndarray) -> np.ndarray:
        U = np.empty_like(self.Z)
        for c in range(self.Z.shape[1]):
            *_, U[:, c], info = lapack.dptsv(self.diag + t[c], self.off, self.Z[:, c])
            if info != 0:  # T + t I not numerically positive definite: F is (nearly) rank deficient
                raise Imprecise
        return U

    def moments(self, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        U = self.solve(t)
        m2 = (U * U).sum(axis=0)
        q = self.norm2 - (self.Z * U).sum(axis=0)
        return m2, q - t * m2, q


def apply_qt(c: np.ndarray, tau: np.ndarray, B: np.ndarray, block: int = 32) -> np.ndarray:
    """``Q^T B`` for dsytrd's lower-storage ``Q = H(0) ... H(d-2)``, ``H(i) = I - tau_i v v^T``.

    v is 1 at row i + 1 and ``c[i + 2:, i]`` below it. scipy's LAPACK wrappers have no
    dormtr, so ``block`` reflectors at a time are merged into ``I - V W V^T`` (LAPACK's
    dlarft recurrence) and applied with three products: 2x faster than one at a time.
    """
    Z = B.copy()
    for j0 in range(0, c.shape[0] - 1, block):
        j1 = min(j0 + block, c.shape[0] - 1)
        m = j1 - j0
        V = np.tril(c[j0 + 1 :, j0:j1], -1)  # rows j0+1..: reflector j0+j has its unit at row j
        V[np.arange(m), np.arange(m)] = 1.0
        S = V.T @ V
        W = np.zeros((m, m))
        for j in range(m):
            W[j, j] = tau[j0 + j]
            W[:j, j] = -tau[j0 + j] * (W[:j, :j] @ S[:j, j])
        # H(j0) ... H(j1-1) = I - V W V^T, and Q^T applies its transpose.
        Z[j0 + 1 :] -= V @ (W.T @ (V.T @ Z[j0 + 1 :]))
    return Z



def reduce_gram(F: np.ndarray, Y: np.ndarray, scale: float) -> tuple[np.ndarray, Tridiagonal, float]:
    """Eigenvalues s (d,) of ``F^T F / scale^2``, the targets against its tridiagonal, and
    delta: a bound on the norm of the rounding as a perturbation of ``F^T F``.

    F : (n, d) float64 with n > d; Y : (n, t) float64. ``scale`` is a power of two, so
    dividing the products by it is exact; F itself is divided first only where ``F^T F``
    could over- or underflow. Raises ``Imprecise`` where the route cannot be certified.
    """
    n, d = F.shape
    if not 2.0**-300 < scale < 2.0**300:
        F, scale_g = F / scale, 1.0
    else:
        scale_g = scale
    G = F.T @ F  # numpy's syrk: one triangle's multiply-adds
    B = F.T @ Y
    if scale_g != 1.0:
        G *= 1.0 / (scale_g * scale_g)
        B *= 1.0 / scale_g
    trace = float(np.trace(G))
    if not trace > 0.0:
        raise Imprecise
    # Rounding of the Gram (n terms per entry), of the reduction and of F^T y, as a
    # perturbation of F^T F: at most delta in norm.
    delta = 4.0 * (n + d) * _EPS * trace
    # G.T: F-ordered, no copy. A workspace of 32 columns lets dsytrd use its blocked
    # (level-3) reduction: 2x faster than the unblocked one the default workspace gets.
    c, diag, off, tau, info = lapack.dsytrd(G.T, lower=1, lwork=32 * d, overwrite_a=1)
    if info != 0:
        raise Imprecise
    s, info = lapack.dsterf(diag, off)
    if info != 0 or s[0] <= delta:  # (nearly) rank deficient: the eigenvalues near 0 are noise
        raise Imprecise
    norm2 = (Y * Y).sum(axis=0)
    targets = Tridiagonal(diag, off, apply_qt(c, tau, B), norm2)
    residual = norm2 - (targets.Z * targets.solve(np.zeros(Y.shape[1]))).sum(axis=0)
    if not np.all(residual > _MIN_RESIDUAL_SHARE * norm2):  # y (almost) in the span of F, or y = 0
        raise Imprecise
    return s, targets, delta


def certify(delta: float, s: np.ndarray, t_low: np.ndarray, m2: np.ndarray, q: np.ndarray, n: int) -> None:
    """Raise ``Imprecise`` unless a perturbation of norm delta moves no column's evidence / n
    by more than ``GRAM_TOL``: first-order effect on log|T/t + I| (also bounds the fixed
    point's gamma) and on beta q (dq <= delta m2)."""
    bound = delta * (1.0 / (s[:, None] + t_low[None, :])).sum(axis=0) + n * delta * m2 / q
    if not np.all(bound <= GRAM_TOL * n):
        raise Imprecise
