"""Mixtures of candidate specifications that best explain a user's specification.

With ``u`` the user's embedding and ``c_1..c_m`` the candidates',

    MMD^2(u, sum_i w_i c_i) = <u,u> - 2 w'b + w'G w,   b_i = <u, c_i>,  G_ij = <c_i, c_j>,

a convex QP over the simplex (w >= 0, sum w = 1) on the m x m Gram matrix, solved
exactly by a primal active-set method. ``greedy_mixture`` adds components one
at a time while the MMD^2 gain beats a threshold, and ``mixture_is_significant``
calibrates that threshold against the sampling noise of the user's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specs._validation import (
    check_positive_float,
    check_positive_int,
    check_same_dim,
    check_spec,
    check_spec_batch,
)
from specs.exceptions import InvalidParameterError
from specs.kernels import _rbf
from specs.mmd import _cross_terms, batch_self_terms


def simplex_qp(G: np.ndarray, b: np.ndarray, *, tol: float = 1e-13) -> np.ndarray:
    """Exact ``argmin_w w'G w - 2 b'w`` subject to ``w >= 0, sum(w) = 1``.

    Primal active-set method: start at the best vertex, solve the equality-
    constrained problem on the free set, step back to the boundary when a
    weight would turn negative, and free the index with the most negative
    multiplier until the KKT conditions hold.

    Parameters
    ----------
    G : ndarray (m, m)
        Symmetric positive semi-definite.
    b : ndarray (m,)
    tol : float
        Tolerance on the KKT multipliers.

    Returns
    -------
    ndarray (m,) : weights on the simplex
    """
    m = b.shape[0]
    # A relative ridge makes repeated candidates (singular G) solvable; it moves
    # the optimum by ~1e-12 of the objective's scale.
    H = G + 1e-12 * max(float(np.trace(G)) / m, 1e-300) * np.eye(m)
    w = np.zeros(m)
    w[int(np.argmin(np.diag(G) - 2.0 * b))] = 1.0
    free = w > 0
    for _ in range(10 * m + 10):
        idx = np.flatnonzero(free)
        target = _equality_qp(H[np.ix_(idx, idx)], b[idx])
        if (target > 0).all():
            w[:] = 0.0
            w[idx] = target
            h = H @ w - b  # (half) gradient; equal on the free set at the optimum
            mult = h - h[idx].mean()
            mult[idx] = 0.0
            j = int(np.argmin(mult))
            if mult[j] >= -tol * max(1.0, float(np.abs(h).max())):
                break
            free[j] = True
            continue
        # Step from w toward target until the first weight hits zero, then fix it there.
        cur = w[idx]
        shrinking = target < cur
        ratios = np.full(idx.shape[0], np.inf)
        ratios[shrinking] = cur[shrinking] / (cur[shrinking] - target[shrinking])
        alpha = min(1.0, float(ratios.min()))
        w[idx] = cur + alpha * (target - cur)
        w[idx[int(np.argmin(ratios))]] = 0.0
        w[w < 0] = 0.0
        free = w > 0
    return w / w.sum()


def _equality_qp(H: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin w'Hw - 2b'w subject to sum(w) = 1 (KKT linear system)."""
    k = b.shape[0]
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = H
    kkt[:k, k] = kkt[k, :k] = 1.0
    rhs = np.append(b, 1.0)
    try:
        return np.linalg.solve(kkt, rhs)[:k]
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]


def _prepare(
    Z: object, beta: object, cand_Zs: object, cand_betas: object, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    Z, beta = check_spec(Z, beta, "user")
    Zs, betas = check_spec_batch(cand_Zs, cand_betas)
    check_same_dim(Z.shape[1], Zs.shape[2], "user", "candidates")
    return Z, beta, Zs, betas, check_positive_float(gamma, "gamma")


def _gram_rows(Zs: np.ndarray, betas: np.ndarray, rows: np.ndarray, gamma: float) -> np.ndarray:
    """Rows ``G[rows, :]`` of the candidates' Gram matrix, (len(rows), m)."""
    return np.stack([_cross_terms(Zs[i], betas[i], Zs, betas, gamma) for i in rows])


def mixture_weights(
    Z: object, beta: object, cand_Zs: object, cand_betas: object, gamma: float
) -> tuple[np.ndarray, float]:
    """Simplex weights of the candidates minimising MMD^2 to the user's spec.

    Parameters
    ----------
    Z : array-like (K, d)
        User's reduced set.
    beta : array-like (K,)
    cand_Zs : array-like (m, Kc, d)
        Candidates, padded with zero weights.
    cand_betas : array-like (m, Kc)
    gamma : float

    Returns
    -------
    w : ndarray (m,), w >= 0, sum(w) = 1
    mmd2 : float, MMD^2(user, sum_i w_i cand_i) >= 0
    """
    Z, beta, Zs, betas, gamma = _prepare(Z, beta, cand_Zs, cand_betas, gamma)
    G = _gram_rows(Zs, betas, np.arange(Zs.shape[0]), gamma)
    G = 0.5 * (G + G.T)
    b = _cross_terms(Z, beta, Zs, betas, gamma)
    w = simplex_qp(G, b)
    user = float(beta @ _rbf(Z, Z, gamma) @ beta)
    return w, max(user - 2.0 * float(b @ w) + float(w @ G @ w), 0.0)


def sampling_noise_mmd2(self_term: float, n_samples: int) -> float:
    """Expected MMD^2 between an n-sample empirical embedding and its distribution.

    ``E ||mu_hat - mu||^2 = (E k(x,x) - E k(x,x')) / n = (1 - ||mu||^2) / n`` for a
    Gaussian kernel; ``||mu||^2`` is estimated by the spec's ``self_term``.

    Parameters
    ----------
    self_term : float
        ``beta' K_ZZ beta`` of the user's spec.
    n_samples : int
        Rows of the data it summarises.

    Returns
    -------
    float
    """
    n = check_positive_int(n_samples, "n_samples")
    return max(1.0 - float(self_term), 0.0) / n


def mixture_is_significant(
    best_single_mmd2: float,
    mixture_mmd2: float,
    *,
    self_term: float,
    n_samples: int,
    factor: float = 2.0,
) -> bool:
    """Does the mixture explain the user's data better than sampling noise would?

    True when ``best_single_mmd2 - mixture_mmd2 > factor * sampling_noise_mmd2``.
    When the data came from the best single candidate's distribution, mixing
    in others can only fit the noise of the n samples, whose total expected
    size is ``sampling_noise_mmd2``; a gain of twice that total was not reached
    in 200 null trials of ``tests/specs/test_mixture.py`` (see ``docs/specs.md``).
    """
    if factor <= 0:
        raise InvalidParameterError(f"factor must be > 0, got {factor!r}")
    noise = sampling_noise_mmd2(self_term, n_samples)
    return best_single_mmd2 - mixture_mmd2 > factor * noise


@dataclass(frozen=True)
class MixtureResult:
    """Outcome of :func:`greedy_mixture`.

    Attributes
    ----------
    indices : ndarray (k,) int
        Selected candidates, in order of selection.
    weights : ndarray (k,) float
        Their simplex weights.
    mmd2 : float
        MMD^2 of the user to the weighted mixture.
    best_single_index : int
    best_single_mmd2 : float
    history : list of float
        MMD^2 after each selection (history[0] = best_single_mmd2).
    noise_mmd2 : float or None
        ``sampling_noise_mmd2`` when ``n_samples`` was given.
    significant : bool or None
        ``mixture_is_significant`` of the final mixture when ``n_samples`` was given.
    """

    indices: np.ndarray
    weights: np.ndarray
    mmd2: float
    best_single_index: int
    best_single_mmd2: float
    history: list[float] = field(default_factory=list)
    noise_mmd2: float | None = None
    significant: bool | None = None


def greedy_mixture(
    Z: object,
    beta: object,
    cand_Zs: object,
    cand_betas: object,
    gamma: float,
    *,
    max_components: int = 5,
    min_gain: float = 0.0,
    n_samples: int | None = None,
    factor: float = 2.0,
) -> MixtureResult:
    """Forward selection of up to ``max_components`` candidates with exact weights.

    Starting from the best single candidate, each round tries every unused
    candidate, re-solves the simplex QP on the enlarged set and keeps the best;
    it stops when the MMD^2 gain of a round is at most ``min_gain``, or, when
    ``n_samples`` (rows of the user's data) is given, at most
    ``factor * sampling_noise_mmd2`` as well.

    Parameters
    ----------
    Z, beta : user's reduced set, (K, d) and (K,)
    cand_Zs, cand_betas : (m, Kc, d) and (m, Kc), padded with zero weights
    gamma : float
    max_components : int
    min_gain : float
        Absolute MMD^2 gain a new component must beat.
    n_samples : int, optional
    factor : float

    Returns
    -------
    MixtureResult
    """
    Z, beta, Zs, betas, gamma = _prepare(Z, beta, cand_Zs, cand_betas, gamma)
    check_positive_int(max_components, "max_components")
    m = Zs.shape[0]
    user = float(beta @ _rbf(Z, Z, gamma) @ beta)
    b = _cross_terms(Z, beta, Zs, betas, gamma)
    diag = batch_self_terms(Zs, betas, gamma)
    singles = np.maximum(user - 2.0 * b + diag, 0.0)
    best = int(np.argmin(singles))
    noise = None if n_samples is None else sampling_noise_mmd2(user, n_samples)
    threshold = max(float(min_gain), 0.0 if noise is None else factor * noise)
    chosen, rows = [best], _gram_rows(Zs, betas, np.array([best]), gamma)
    weights, history = np.ones(1), [float(singles[best])]
    while len(chosen) < min(max_components, m):
        trial = _best_addition(chosen, rows, diag, b, user)
        # A newcomer the QP leaves at ~zero weight explains nothing new.
        if trial is None or history[-1] - trial[2] <= threshold or trial[1][-1] < 1e-9:
            break
        j, weights, value = trial
        chosen.append(j)
        rows = np.vstack([rows, _gram_rows(Zs, betas, np.array([j]), gamma)])
        history.append(value)
    significant = None
    if noise is not None:
        significant = bool(len(chosen) > 1 and history[0] - history[-1] > factor * noise)
    return MixtureResult(
        np.array(chosen), weights, history[-1], best, float(singles[best]), history, noise, significant
    )


def _best_addition(
    chosen: list[int], rows: np.ndarray, diag: np.ndarray, b: np.ndarray, user: float
) -> tuple[int, np.ndarray, float] | None:
    """Best (candidate, weights, MMD^2) when one unused candidate joins ``chosen``."""
    best: tuple[int, np.ndarray, float] | None = None
    for j in range(b.shape[0]):
        if j in chosen:
            continue
        idx = chosen + [j]
        G = np.empty((len(idx), len(idx)))
        G[:-1, :] = rows[:, idx]
        G[-1, :-1] = rows[:, j]
        G[-1, -1] = diag[j]
        G = 0.5 * (G + G.T)
        w = simplex_qp(G, b[idx])
        value = max(user - 2.0 * float(b[idx] @ w) + float(w @ G @ w), 0.0)
        if best is None or value < best[2]:
            best = (j, w, value)
    return best
