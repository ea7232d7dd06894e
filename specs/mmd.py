"""Maximum mean discrepancy between reduced kernel mean embeddings.

A reduced set ``(Z, beta)`` stands for the RKHS element ``sum_j beta_j k(Z_j, .)``.
For two of them

    MMD^2 = b1' K(Z1, Z1) b1 - 2 b1' K(Z1, Z2) b2 + b2' K(Z2, Z2) b2,

which is >= 0 in exact arithmetic; round-off below zero is clipped.
"""

from __future__ import annotations

import numpy as np

from specs._validation import (
    check_array,
    check_positive_float,
    check_same_dim,
    check_spec,
    check_spec_batch,
)
from specs.exceptions import DimensionMismatchError
from specs.kernels import BLOCK_ENTRIES, _rbf, kernel_mean_self_term, kernel_mean_terms


def self_term(Z: object, beta: object, gamma: float) -> float:
    """Squared RKHS norm ``beta' K(Z, Z) beta`` of one reduced set.

    Parameters
    ----------
    Z : array-like (K, d)
    beta : array-like (K,)
    gamma : float

    Returns
    -------
    float
    """
    Z, beta = check_spec(Z, beta)
    return float(beta @ _rbf(Z, Z, check_positive_float(gamma, "gamma")) @ beta)


def mmd_squared(Z1: object, beta1: object, Z2: object, beta2: object, gamma: float) -> float:
    """Squared MMD between two reduced sets in the same feature space.

    Parameters
    ----------
    Z1 : array-like (K1, d)
    beta1 : array-like (K1,)
    Z2 : array-like (K2, d)
    beta2 : array-like (K2,)
    gamma : float

    Returns
    -------
    float, >= 0

    Raises
    ------
    DimensionMismatchError
        The two sets have different d.
    """
    Z1, beta1 = check_spec(Z1, beta1, "spec1")
    Z2, beta2 = check_spec(Z2, beta2, "spec2")
    check_same_dim(Z1.shape[1], Z2.shape[1], "spec1", "spec2")
    gamma = check_positive_float(gamma, "gamma")
    value = (
        beta1 @ _rbf(Z1, Z1, gamma) @ beta1
        - 2.0 * beta1 @ _rbf(Z1, Z2, gamma) @ beta2
        + beta2 @ _rbf(Z2, Z2, gamma) @ beta2
    )
    return max(float(value), 0.0)


def batch_self_terms(
    Zs: object, betas: object, gamma: float, *, block_entries: int = BLOCK_ENTRIES
) -> np.ndarray:
    """Squared norms ``betas[i]' K(Zs[i], Zs[i]) betas[i]`` of a padded batch.

    Parameters
    ----------
    Zs : array-like (m, K, d)
    betas : array-like (m, K)
        Padding rows carry weight 0.
    gamma : float

    Returns
    -------
    ndarray (m,) float64
    """
    Zs, betas = check_spec_batch(Zs, betas)
    gamma = check_positive_float(gamma, "gamma")
    m, K, _ = Zs.shape
    out = np.empty(m)
    step = max(1, block_entries // max(K * K, 1))
    for s in range(0, m, step):
        Zc, bc = Zs[s : s + step], betas[s : s + step]
        norms = np.einsum("mkd,mkd->mk", Zc, Zc)
        sq = np.matmul(Zc, Zc.transpose(0, 2, 1))
        sq *= -2.0
        sq += norms[:, :, None]
        sq += norms[:, None, :]
        np.maximum(sq, 0.0, out=sq)
        sq *= -gamma
        np.exp(sq, out=sq)
        out[s : s + step] = np.einsum("mk,mkl,ml->m", bc, sq, bc)
        del sq  # else the next block is allocated while this one is still alive
    return out


def _cross_terms(
    Z: np.ndarray,
    beta: np.ndarray,
    Zs: np.ndarray,
    betas: np.ndarray,
    gamma: float,
    block_entries: int = BLOCK_ENTRIES,
) -> np.ndarray:
    """Inner products ``beta' K(Z, Zs[i]) betas[i]`` for validated inputs, (m,)."""
    m, Kc, d = Zs.shape
    cross = np.empty(m)
    step = max(1, block_entries // max(Z.shape[0] * Kc, 1))
    for s in range(0, m, step):
        v = beta @ _rbf(Z, Zs[s : s + step].reshape(-1, d), gamma)
        cross[s : s + step] = np.einsum("mk,mk->m", v.reshape(-1, Kc), betas[s : s + step])
    return cross


def cross_terms(Z: object, beta: object, Zs: object, betas: object, gamma: float) -> np.ndarray:
    """RKHS inner products of one reduced set with a padded batch.

    Parameters
    ----------
    Z : array-like (K, d)
    beta : array-like (K,)
    Zs : array-like (m, Kc, d)
    betas : array-like (m, Kc)
    gamma : float

    Returns
    -------
    ndarray (m,) float64: ``beta' K(Z, Zs[i]) betas[i]``
    """
    Z, beta = check_spec(Z, beta, "query")
    Zs, betas = check_spec_batch(Zs, betas)
    check_same_dim(Z.shape[1], Zs.shape[2], "query", "candidates")
    return _cross_terms(Z, beta, Zs, betas, check_positive_float(gamma, "gamma"))


def mmd_squared_batch(
    Z: object,
    beta: object,
    Zs: object,
    betas: object,
    gamma: float,
    self_terms: object | None = None,
    *,
    block_entries: int = BLOCK_ENTRIES,
) -> np.ndarray:
    """Squared MMD of one reduced set against ``m`` candidates at once.

    The cross terms of a block of candidates are one kernel matrix between
    ``Z`` and the stacked candidate points, reduced by two matrix products;
    blocks keep memory at ``O(block_entries)``.

    Parameters
    ----------
    Z : array-like (K, d)
        The query (user) reduced set.
    beta : array-like (K,)
    Zs : array-like (m, Kc, d)
        Candidates, padded to a common Kc with zero weights.
    betas : array-like (m, Kc)
    gamma : float
    self_terms : array-like (m,), optional
        Precomputed ``batch_self_terms(Zs, betas, gamma)`` (a market stores
        them with each spec); computed when omitted.

    Returns
    -------
    ndarray (m,) float64, >= 0
    """
    Z, beta = check_spec(Z, beta, "query")
    Zs, betas = check_spec_batch(Zs, betas)
    check_same_dim(Z.shape[1], Zs.shape[2], "query", "candidates")
    gamma = check_positive_float(gamma, "gamma")
    m = Zs.shape[0]
    if self_terms is None:
        st = batch_self_terms(Zs, betas, gamma, block_entries=block_entries)
    else:
        st = check_array(self_terms, "self_terms", ndim=1)
        if st.shape[0] != m:
            raise DimensionMismatchError(f"self_terms has {st.shape[0]} entries, expected m={m}")
    cross = _cross_terms(Z, beta, Zs, betas, gamma, block_entries)
    user = float(beta @ _rbf(Z, Z, gamma) @ beta)
    return np.maximum(user - 2.0 * cross + st, 0.0)


def mmd_to_data(
    Z: object,
    beta: object,
    X: object,
    gamma: float,
    *,
    data_self_term: float | None = None,
) -> float:
    """Squared MMD between a reduced set and the empirical embedding of ``X``.

    Parameters
    ----------
    Z : array-like (K, d)
    beta : array-like (K,)
    X : array-like (n, d)
    gamma : float
    data_self_term : float, optional
        ``(1/n^2) sum_ij k(X_i, X_j)`` if already known. Computing it is
        O(n^2 d) time (chunked, O(1) extra memory): about a second for
        n = 10,000 and d = 64 here, quadratic beyond.

    Returns
    -------
    float, >= 0
    """
    Z, beta = check_spec(Z, beta)
    X = check_array(X, "X")
    check_same_dim(Z.shape[1], X.shape[1], "spec", "X")
    gamma = check_positive_float(gamma, "gamma")
    if data_self_term is None:
        data_self_term = kernel_mean_self_term(X, gamma)
    c, _ = kernel_mean_terms(Z, X, gamma)
    value = beta @ _rbf(Z, Z, gamma) @ beta - 2.0 * beta @ c + data_self_term
    return max(float(value), 0.0)
