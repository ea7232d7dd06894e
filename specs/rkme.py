"""Reduced kernel mean embedding (RKME) of a data set, and the table space's standardiser.

An RKME replaces the empirical kernel mean embedding ``(1/n) sum_i k(x_i, .)``
of a data set X (n, d) by ``sum_j beta_j k(z_j, .)`` with K << n points,
minimising (Wu et al., "Model reuse with reduced kernel mean embedding
specification")

    J(Z, beta) = || (1/n) sum_i k(x_i, .) - sum_j beta_j k(z_j, .) ||^2_H.

For fixed Z the optimal beta solves ``K_ZZ beta = c`` with ``c_j = mean_i k(z_j, x_i)``;
eliminating beta leaves a smooth function of Z alone whose gradient (envelope
theorem) is the partial gradient at the optimal beta. We initialise Z by
k-means++ / Lloyd and minimise that function with L-BFGS, stopping when the
objective stops improving. See ``docs/specs.md`` for the design and measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse

from specs._validation import (
    check_array,
    check_positive_float,
    check_positive_int,
    check_same_dim,
    check_spec,
)
from specs.exceptions import (
    IncompatibleSpaceError,
    InvalidDataError,
    NotFittedError,
    SerializationError,
)
from specs.kernels import _rbf, default_gamma, kernel_mean_terms, squared_distances
from specs.mmd import mmd_squared, mmd_to_data


def _kmeans(X: np.ndarray, K: int, rng: np.random.Generator, n_iter: int = 10) -> np.ndarray:
    """k-means++ seeding followed by Lloyd iterations; returns centres (K, d)."""
    n = X.shape[0]
    xx = np.einsum("ij,ij->i", X, X)
    centres = np.empty((K, X.shape[1]))
    centres[0] = X[rng.integers(n)]
    d2 = np.maximum(xx - 2.0 * X @ centres[0] + centres[0] @ centres[0], 0.0)
    for j in range(1, K):
        total = d2.sum()
        # All mass on existing centres means fewer distinct rows than K in
        # this sample: any row will do, the ridge in the beta solve absorbs repeats.
        i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres[j] = X[i]
        new_d2 = xx - 2.0 * X @ centres[j] + centres[j] @ centres[j]
        np.minimum(d2, np.maximum(new_d2, 0.0, out=new_d2), out=d2)
    labels = np.full(n, -1)
    for _ in range(n_iter):
        new = squared_distances(X, centres).argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        onehot = scipy.sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(K, n))
        counts = np.bincount(labels, minlength=K)
        filled = counts > 0  # an emptied cluster keeps its previous centre
        centres[filled] = (onehot @ X)[filled] / counts[filled, None]
    return centres


def _solve_beta(G: np.ndarray, c: np.ndarray, ridge: float, nonnegative: bool) -> np.ndarray:
    """argmin_b b'(G + ridge I)b - 2 b'c, optionally with b >= 0 (exact NNLS)."""
    A = G + ridge * np.eye(G.shape[0])
    if not nonnegative:
        return scipy.linalg.solve(A, c, assume_a="pos")
    # With A = L L', the objective is ||L' b - L^{-1} c||^2 + const: an NNLS problem.
    L = scipy.linalg.cholesky(A, lower=True)
    rhs = scipy.linalg.solve_triangular(L, c, lower=True)
    beta, _ = scipy.optimize.nnls(L.T, rhs, maxiter=50 * G.shape[0])
    return beta


class _Objective:
    """J(Z) with beta eliminated, and its gradient, on a (sub)sample S."""

    def __init__(self, S: np.ndarray, gamma: float, ridge: float, nonnegative: bool) -> None:
        self.S, self.gamma, self.ridge, self.nonnegative = S, gamma, ridge, nonnegative

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        Z = z.reshape(-1, self.S.shape[1])
        G = _rbf(Z, Z, self.gamma)
        c, M = kernel_mean_terms(Z, self.S, self.gamma, with_moment=True)
        beta = _solve_beta(G, c, self.ridge, self.nonnegative)
        Gb = G @ beta
        value = beta @ Gb + self.ridge * beta @ beta - 2.0 * beta @ c
        # dJ/dz_j = -4 gamma beta_j [sum_l beta_l k_jl (z_j - z_l) - mean_i k_ji (z_j - x_i)]
        inner = Z * (Gb - c)[:, None] - G @ (beta[:, None] * Z) + M
        grad = -4.0 * self.gamma * beta[:, None] * inner
        return float(value), grad.ravel()


class RKMESpecification:
    """Reduced kernel mean embedding of a data set under a Gaussian kernel.

    Parameters
    ----------
    K : int, default 100
        Number of reduced points; the fit keeps ``K' = min(K, distinct rows)``.
    gamma : float, optional
        Kernel bandwidth of the feature space. ``None`` uses
        :func:`specs.kernels.default_gamma` ``= 1 / (2 d)``, meant for data already
        mapped by the space's :class:`TableStandardizer`.
    nonnegative_beta : bool, default False
        Constrain the weights to be >= 0 (exact NNLS at each step).
    max_iter : int, default 15
        Most L-BFGS iterations when refining Z. 15 is the knee of the
        time/fidelity curve in ``benchmarks/rkme_vs_learnware.py``; 1 keeps
        the k-means points (already far better than the learnware package), 100
        about halves the remaining MMD^2 again at 5-10x the time.
    tol : float, default 1e-7
        Stop when an iteration improves the objective by less than ``tol``
        relative to its magnitude (L-BFGS-B ``ftol``).
    ridge : float, default 1e-6
        Added to the diagonal of K_ZZ (whose diagonal is 1) in the beta solve;
        keeps ``||beta||_1`` moderate, which the RFF sketch needs.
    max_fit_samples : int, default 5000
        k-means and the refinement of Z run on a seeded uniform subsample of
        at most this many rows, so the cost beyond it grows only through one
        chunked pass over all rows, which computes the final beta.
    random_state : int or numpy Generator, optional
        Seed of the subsample and of the k-means++ initialisation.

    Attributes
    ----------
    Z_ : ndarray (K', d) float64
        Reduced points.
    beta_ : ndarray (K',) float64
        Weights.
    gamma_ : float
        Bandwidth used.
    n_samples_ : int
        Number of rows of the fitted data.
    n_features_in_ : int
        d.
    n_iter_ : int
        L-BFGS iterations run (0 when the embedding was exact).
    """

    def __init__(
        self,
        K: int = 100,
        gamma: float | None = None,
        *,
        nonnegative_beta: bool = False,
        max_iter: int = 15,
        tol: float = 1e-7,
        ridge: float = 1e-6,
        max_fit_samples: int = 5_000,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.K = K
        self.gamma = gamma
        self.nonnegative_beta = nonnegative_beta
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def _check_params(self, d: int) -> tuple[int, float]:
        K = check_positive_int(self.K, "K")
        gamma = default_gamma(d) if self.gamma is None else check_positive_float(self.gamma, "gamma")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.max_fit_samples, "max_fit_samples")
        check_positive_float(self.tol, "tol")
        check_positive_float(self.ridge, "ridge")  # 0 would make repeated points singular
        return K, gamma

    def fit(self, X: object) -> RKMESpecification:
        """Fit the reduced set to the data.

        Parameters
        ----------
        X : array-like (n, d)
            Numeric, finite; rows are samples.

        Returns
        -------
        self

        Raises
        ------
        InvalidDataError
            Empty, 1-D, non-numeric or non-finite X.
        InvalidParameterError
            K <= 0, gamma <= 0, ...
        """
        X = check_array(X, "X")
        n, d = X.shape
        K, gamma = self._check_params(d)
        rng = np.random.default_rng(self.random_state)
        S = X if n <= self.max_fit_samples else X[np.sort(rng.choice(n, self.max_fit_samples, replace=False))]
        self.gamma_, self.n_samples_, self.n_features_in_, self.n_iter_ = gamma, n, d, 0
        exact = self._exact_if_few_distinct(X, S, K)
        if exact is not None:
            self.Z_, self.beta_ = exact
            return self
        Z = _kmeans(S, K, rng)
        ridge = float(self.ridge)
        result = scipy.optimize.minimize(
            _Objective(S, gamma, ridge, self.nonnegative_beta),
            Z.ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": 1e-12},
        )
        self.Z_ = result.x.reshape(K, d)
        self.n_iter_ = int(result.nit)
        c, _ = kernel_mean_terms(self.Z_, X, gamma)  # all n rows, chunked
        self.beta_ = _solve_beta(_rbf(self.Z_, self.Z_, gamma), c, ridge, self.nonnegative_beta)
        return self

    @staticmethod
    def _exact_if_few_distinct(X: np.ndarray, S: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(distinct rows, frequencies) when X has at most K distinct rows, else None."""
        if np.unique(S, axis=0).shape[0] > K:
            return None
        uniq, counts = np.unique(X, axis=0, return_counts=True)
        if uniq.shape[0] > K:
            return None
        return uniq, counts / X.shape[0]

    @classmethod
    def from_arrays(
        cls, Z: object, beta: object, gamma: float, *, n_samples: int | None = None
    ) -> RKMESpecification:
        """Build a fitted specification from its arrays (deserialisation, tests).

        Parameters
        ----------
        Z : array-like (K, d)
        beta : array-like (K,)
        gamma : float
        n_samples : int, optional
            Size of the data it summarises, when known.
        """
        Z, beta = check_spec(Z, beta)
        spec = cls(K=Z.shape[0], gamma=check_positive_float(gamma, "gamma"))
        spec.Z_, spec.beta_, spec.gamma_ = Z, beta, float(gamma)
        spec.n_features_in_, spec.n_iter_ = Z.shape[1], 0
        spec.n_samples_ = None if n_samples is None else check_positive_int(n_samples, "n_samples")
        return spec

    def _check_fitted(self) -> None:
        if not hasattr(self, "Z_"):
            raise NotFittedError("this RKMESpecification is not fitted; call fit(X) first")

    def self_term(self) -> float:
        """Squared RKHS norm ``beta' K(Z, Z) beta``."""
        self._check_fitted()
        return float(self.beta_ @ _rbf(self.Z_, self.Z_, self.gamma_) @ self.beta_)

    def mmd_to_data(self, X: object, *, data_self_term: float | None = None) -> float:
        """Squared MMD between this spec and the empirical embedding of ``X`` (n, d).

        See :func:`specs.mmd.mmd_to_data` for the cost of the data term.
        """
        self._check_fitted()
        return mmd_to_data(self.Z_, self.beta_, X, self.gamma_, data_self_term=data_self_term)

    def mmd(self, other: RKMESpecification) -> float:
        """Squared MMD to another fitted spec of the same space (same d and gamma)."""
        self._check_fitted()
        other._check_fitted()
        check_same_dim(self.n_features_in_, other.n_features_in_, "this spec", "other spec")
        if not np.isclose(self.gamma_, other.gamma_, rtol=1e-12, atol=0.0):
            raise IncompatibleSpaceError(
                f"gamma differs ({self.gamma_!r} vs {other.gamma_!r}): not the same feature space"
            )
        return mmd_squared(self.Z_, self.beta_, other.Z_, other.beta_, self.gamma_)


def rkme_fit(
    X: object,
    K: int = 100,
    gamma: float | None = None,
    *,
    random_state: int | np.random.Generator | None = None,
    **kwargs: Any,
) -> RKMESpecification:
    """Functional form of ``RKMESpecification(K, gamma, ...).fit(X)``."""
    return RKMESpecification(K, gamma, random_state=random_state, **kwargs).fit(X)


class TableStandardizer:
    """Fixed coordinates of a table feature space, invariant to per-column units.

    ``transform`` maps an upload X (n, d) in two steps:

    1. if ``scale_invariant``: divide each column by the upload's own root mean
       square ``sqrt(mean(x^2))`` (a column of zeros is left as is). Multiplying
       a column by any c > 0 (grams vs kilograms) leaves the result unchanged,
       while the ratio of location to spread, which tells domains apart, survives;
    2. subtract ``mean_`` and divide by ``scale_``, both fitted once on the
       space's reference data and then stored with the space, so every upload
       lands in the same coordinates where ``gamma = 1 / (2 d)`` fits.

    Per-upload standardisation (subtracting the upload's own mean) is *not* done:
    it would erase the location differences between domains. See
    ``docs/specs.md`` for the measurement behind this choice.

    Parameters
    ----------
    scale_invariant : bool, default True

    Attributes
    ----------
    mean_ : ndarray (d,)
    scale_ : ndarray (d,)
        Standard deviations of the reference (step 1 applied); 1 for constant columns.
    """

    FORMAT = "lwm-table-standardizer"
    VERSION = 1

    def __init__(self, *, scale_invariant: bool = True) -> None:
        self.scale_invariant = scale_invariant

    def _unit_free(self, X: np.ndarray) -> np.ndarray:
        if not self.scale_invariant:
            return X
        rms = np.sqrt(np.mean(X * X, axis=0))
        return X / np.where(rms > 0, rms, 1.0)

    def fit(self, X: object) -> TableStandardizer:
        """Fit ``mean_`` and ``scale_`` on the space's reference data X (n, d)."""
        U = self._unit_free(check_array(X, "X"))
        self.mean_ = U.mean(axis=0)
        std = U.std(axis=0)
        self.scale_ = np.where(std > 1e-12 * (1.0 + np.abs(self.mean_)), std, 1.0)
        return self

    def transform(self, X: object) -> np.ndarray:
        """Map an upload X (n, d) to the space's coordinates; returns (n, d) float64."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("this TableStandardizer is not fitted; call fit(X) first")
        X = check_array(X, "X")
        check_same_dim(X.shape[1], self.mean_.shape[0], "X", "the space's standardizer")
        return (self._unit_free(X) - self.mean_) / self.scale_

    def fit_transform(self, X: object) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats are written exactly by ``json``)."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("this TableStandardizer is not fitted; call fit(X) first")
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "scale_invariant": bool(self.scale_invariant),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableStandardizer:
        """Inverse of :meth:`to_dict`; raises :class:`SerializationError` naming the bad field."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise SerializationError(f"field 'format' must be {cls.FORMAT!r}")
        if data.get("version") != cls.VERSION:
            raise SerializationError(f"field 'version' must be {cls.VERSION}, got {data.get('version')!r}")
        if not isinstance(data.get("scale_invariant"), bool):
            raise SerializationError("field 'scale_invariant' must be a boolean")
        try:
            mean = check_array(data.get("mean"), "mean", ndim=1)
            scale = check_array(data.get("scale"), "scale", ndim=1)
        except InvalidDataError as exc:
            raise SerializationError(f"bad field: {exc}") from exc
        if mean.shape != scale.shape or (scale <= 0).any():
            raise SerializationError("field 'scale' must be > 0 with the same length as 'mean'")
        out = cls(scale_invariant=data["scale_invariant"])
        out.mean_, out.scale_ = mean, scale
        return out
