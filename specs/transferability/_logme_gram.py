"""LogME's fast route for n > d: the d x d Gram reduced to a tridiagonal, with an accuracy certificate.

``F^T F`` is reduced to a tridiagonal T by Householder reflections (``dsytrd``; no
eigenvectors are formed: most of an eigendecomposition's cost is in forming them). Each
step of the fixed point then factors ``T + t I = L D L^T`` for every column at once (one
O(d t) ``dptsv`` call), which gives every term of the evidence: the quadratic forms
``z^T (T + t I)^-1 z``, ``log |T + t I|`` and ``tr (T + t I)^-1``, so T's eigenvalues
(``dsterf``: a sixth of the whole call at d = 768) are needed only where t lies above
most of the spectrum. A rigorous bound on the Gram's rounding decides whether the result is accurate
to ``GRAM_TOL``; when it cannot be certified ``Imprecise`` is raised and
:mod:`specs.transferability.logme` takes its exact (SVD) route.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.lapack as lapack
from scipy.linalg import blas

_EPS = np.finfo(np.float64).eps
# The tridiagonal route is used when its worst-case error on every column's evidence / n
# is below this (the errors actually seen are ~1e-13).
GRAM_TOL = 1e-8
# ... and when every column keeps at least this share of ||y||^2 outside the span of F:
# q = ||y||^2 - z^T (T + t)^-1 z is then free of cancellation.
_MIN_RESIDUAL_SHARE = 1e-4
# t = alpha / beta stays within [s_min, s_max] * 10^(-/+100) (or bounds on them): the evidence
# has reached its limits there, and w = t / (s + t) and its square stay clear of underflow.
T_SPAN = 1e100


class Imprecise(Exception):
    """The tridiagonal route cannot certify its accuracy: use the exact route."""


def eigen_sums(s: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """gamma = sum s / (s + t) and n - gamma, the latter summed from t / (s + t) (no cancellation)."""
    denom = s[:, None] + t[None, :]
    gamma = (s[:, None] / denom).sum(axis=0)
    rest = (n - s.shape[0]) + (t[None, :] / denom).sum(axis=0)
    return gamma, rest


def eigen_log_det(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum log(1 + s / t)`` per column: ``log |I + F^T F / t|``."""
    return np.log1p(s[:, None] / t[None, :]).sum(axis=0)


class Tridiagonal:
    """Targets against the tridiagonal ``T = Q^T F^T F Q``: ``Z = Q^T F^T Y`` (d, t).

    Everything the fixed point needs comes from one factorisation ``T + t I = L D L^T``
    per column and step (:meth:`_factor`), not from T's eigenvalues s: with
    ``u = (T + t I)^-1 z``, ``m2 = ||u||^2``, ``q = ||y||^2 - z^T u`` and
    ``res2 = q - t m2``; ``sum log(1 + s/t) = sum log(D_i / t)``; and
    ``sum t / (s + t) = t tr (T + t I)^-1``, whose diagonal follows from L and D by a
    two-term recurrence. Where ``gamma = d - t tr (T + t I)^-1`` would cancel (t above
    most of the spectrum), gamma and the log determinant come from a series in s / t (t
    far above all of it) or from the eigenvalues after all (``dsterf``).

    ``floor`` (< every eigenvalue) and ``trace`` (>= every one) set the band of t.
    """

    # gamma below this share of d is not d - t tr (which loses its digits): see _tail_sums
    _CANCELLING = 1e-4

    def __init__(
        self, diag: np.ndarray, off: np.ndarray, Z: np.ndarray, norm2: np.ndarray, floor: float, trace: float
    ) -> None:
        self.diag, self.off, self.Z, self.norm2 = diag, off, Z, norm2
        self.floor, self.trace = floor, trace
        # The stacked systems of _factor: its off-diagonal (0 between column blocks) and
        # right-hand sides, fixed for the object's life.
        cols = Z.shape[1]
        stacked_off = np.zeros((cols, diag.shape[0]))
        stacked_off[:, :-1] = off
        self._stacked_off, self._stacked_z = stacked_off.ravel()[:-1], Z.T.ravel()
        self._last: list | None = None
        self._eigenvalues: np.ndarray | None = None  # dsterf, computed only if needed

    def bounds(self) -> tuple[float, float]:
        """The band t = alpha / beta is kept in (see ``T_SPAN``)."""
        return self.floor / T_SPAN, self.trace * T_SPAN

    def _factor(self, t: np.ndarray) -> list:
        """[t, D (d t,), the subdiagonal of L (d t - 1,), U = (T + t_c I)^-1 z_c (d, t), tr (T + t_c I)^-1
        or None].

        The columns' systems are stacked into one tridiagonal of length d t whose
        off-diagonal is 0 between blocks, which decouples them exactly (the factorisation
        restarts at each block): one ``dptsv`` instead of t calls and their overhead.
        The last result is kept: each step asks for it two or three times.
        """
        if self._last is not None and np.array_equal(self._last[0], t):
            return self._last
        d, cols = self.Z.shape
        diag = (self.diag[None, :] + t[:, None]).ravel()
        D, sub, U, info = lapack.dptsv(diag, self._stacked_off, self._stacked_z)
        if info != 0:  # T + t I not numerically positive definite: F is (nearly) rank deficient
            raise Imprecise
        self._last = [t.copy(), D, sub, U.reshape(cols, d).T, None]
        return self._last

    def solve(self, t: np.ndarray) -> np.ndarray:
        """``(T + t_c I)^-1 z_c`` for every column c: (d, t)."""
        return self._factor(t)[3]

    def trace_inverse(self, t: np.ndarray) -> np.ndarray:
        """``tr (T + t_c I)^-1 = sum 1 / (s + t_c)`` per column.

        With ``T + t I = L D L^T`` (unit lower bidiagonal L, subdiagonal l), the inverse's
        diagonal obeys ``x_i = 1 / D_i + l_i^2 x_(i+1)``, ``x_d = 1 / D_d``: positive terms
        only, so accurate to a few ulps. That is a unit upper-bidiagonal solve (BLAS
        ``dtbsv``, band storage: row 0 the superdiagonal -l^2, the unit diagonal implied);
        the zeros of l between the stacked blocks keep them apart.
        """
        last = self._factor(t)
        if last[4] is None:
            D, sub = last[1], last[2]
            band = np.zeros((2, D.shape[0]))
            np.multiply(sub, sub, out=band[0, 1:])
            np.negative(band[0, 1:], out=band[0, 1:])
            x = blas.dtbsv(1, band, 1.0 / D, lower=0, diag=1, overwrite_x=1)
            last[4] = x.reshape(t.shape[0], -1).sum(axis=1)
        return last[4]

    def _cancelling(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """t tr (T + t I)^-1 per column, and where d minus it cancels."""
        t_tr = t * self.trace_inverse(t)
        return t_tr, self.diag.shape[0] - t_tr < self._CANCELLING * self.diag.shape[0]

    def _tail_sums(self, t: np.ndarray, log: bool) -> np.ndarray:
        """gamma (or ``log |I + T / t|`` if ``log``) for columns whose t is above most of the spectrum.

        Past 1e8 trace T (the band's upper edge, where MacKay's iterations end for
        features without signal) every s / t <= 1e-8, so two terms of the series in
        s / t are exact to rounding: gamma = p1 / t - p2 / t^2 and the log determinant
        p1 / t - p2 / (2 t^2), with p1 = tr T and p2 = ||T||_F^2. Elsewhere: the eigenvalues.
        """
        out = np.empty_like(t)
        far = t >= 1e8 * self.trace
        if far.any():
            p1 = float(self.diag.sum())
            p2 = float((self.diag * self.diag).sum() + 2.0 * (self.off * self.off).sum())
            x1, x2 = p1 / t[far], p2 / t[far] / t[far]
            out[far] = x1 - (0.5 if log else 1.0) * x2
        if not far.all():
            if self._eigenvalues is None:
                s, info = lapack.dsterf(self.diag, self.off)
                if info != 0:
                    raise Imprecise
                self._eigenvalues = s
            near = t[~far]
            out[~far] = (
                eigen_log_det(self._eigenvalues, near) if log else eigen_sums(self._eigenvalues, near, 0)[0]
            )
        return out

    def spectral_sums(self, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """gamma = sum s / (s + t) and n - gamma per column (see :func:`eigen_sums`)."""
        d = self.diag.shape[0]
        t_tr, cancel = self._cancelling(t)
        gamma = d - t_tr
        if cancel.any():
            gamma[cancel] = self._tail_sums(t[cancel], log=False)
        return gamma, (n - d) + t_tr

    def log_det(self, t: np.ndarray) -> np.ndarray:
        """``sum log(1 + s / t) = log |T + t I| - d log t`` per column, from D."""
        D = self._factor(t)[1].reshape(t.shape[0], -1)
        out = np.log(D / t[:, None]).sum(axis=1)
        _, cancel = self._cancelling(t)
        if cancel.any():  # the sum is tiny there: absolute rounding would dominate it
            out[cancel] = self._tail_sums(t[cancel], log=True)
        return out

    def moments(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        U = self.solve(t)
        m2 = (U * U).sum(axis=0)
        q = self.norm2 - (self.Z * U).sum(axis=0)
        return m2, q - t * m2, q


def apply_qt(c: np.ndarray, tau: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``Q^T B`` for dsytrd's lower-storage ``Q = H(0) ... H(d-2)``, ``H(i) = I - tau_i v v^T``.

    v is 1 at row i + 1 and ``c[i + 2:, i]`` below it: the reflectors of a QR of
    ``c[1:, :-1]``, so ``dormqr`` applies them to ``B[1:]`` (what LAPACK's dormtr does;
    scipy does not wrap dormtr). Row 0 is left as it is.
    """
    d = c.shape[0]
    Z = B.copy()
    if d < 2:
        return Z
    lwork = int(lapack.dormqr("L", "T", c[1:, :-1], tau, Z[1:], -1)[1][0])
    Z[1:], _, info = lapack.dormqr("L", "T", c[1:, :-1], tau, Z[1:], lwork)
    if info != 0:
        raise Imprecise
    return Z


def reduce_gram(F: np.ndarray, Y: np.ndarray, scale: float) -> tuple[Tridiagonal, float]:
    """The targets against the tridiagonal of ``F^T F / scale^2``, and delta: a bound on
    the norm of the rounding as a perturbation of ``F^T F``.

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
    # (Nearly) rank deficient: the eigenvalues near 0 are noise. T - delta I positive
    # definite (its L D L^T exists) says every eigenvalue exceeds delta, without computing them.
    if lapack.dpttrf(diag - delta, off)[2] != 0:
        raise Imprecise
    norm2 = (Y * Y).sum(axis=0)
    targets = Tridiagonal(diag, off, apply_qt(c, tau, B), norm2, delta, trace)
    residual = norm2 - (targets.Z * targets.solve(np.zeros(Y.shape[1]))).sum(axis=0)
    if not np.all(residual > _MIN_RESIDUAL_SHARE * norm2):  # y (almost) in the span of F, or y = 0
        raise Imprecise
    return targets, delta


def certify(
    delta: float, targets: Tridiagonal, t_low: np.ndarray, m2: np.ndarray, q: np.ndarray, n: int
) -> None:
    """Raise ``Imprecise`` unless a perturbation of norm delta moves no column's evidence / n
    by more than ``GRAM_TOL``: first-order effect on log|T/t + I| (also bounds the fixed
    point's gamma) and on beta q (dq <= delta m2)."""
    bound = delta * targets.trace_inverse(t_low) + n * delta * m2 / q
    if not np.all(bound <= GRAM_TOL * n):
        raise Imprecise
