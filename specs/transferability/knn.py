"""Exact leave-one-out k-nearest-neighbour accuracy of features F for labels y.

Each sample is classified by a majority vote of its k nearest *other* samples
(Euclidean or cosine). Rows are processed in blocks, so memory is O(block^2 + n k) and no
(chunk, n, d) array is ever built.

Why it is exact yet fast: candidate neighbours come from a float32 matrix product
(symmetric: each block computed once, the diagonal ones by syrk, a single syrk for
n <= block), and a rigorous bound on its rounding error proves the order: where the
error intervals of a row's k nearest float32 keys are disjoint and below every other
key's, the float32 order is the exact one. Only the other rows (near-ties) have their
candidates re-ranked in float64 (by differences, so near-coincident points keep their
order), and where the bound cannot exclude a non-candidate either, the whole row is.
For the accuracy alone, rows whose possible k nearest all share one label need no
re-ranking: their vote is settled.

The ordering key, smaller = closer, is symmetric so one block serves rows and columns:
h_i + h_j - <x_i, x_j>, i.e. ||x_i - x_j||^2 / 2 (Euclidean, h = ||x||^2 / 2) or
-cos(x_i, x_j) (cosine, h = 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.exceptions import InvalidParameterError
from specs.transferability._checks import (
    check_choice,
    check_class_labels,
    check_features,
    check_positive_int,
    peak_exponent,
    require_finite,
)
from specs.transferability._knn_candidates import (
    _approximate_sets,
    _half_norms,
    _norms_in_range,
    _single_block_sets,
)

_U32 = float(np.finfo(np.float32).eps) / 2.0  # unit roundoff of float32
_EXTRA = 2  # extra float32 candidates per row; makes fallback rows rare
_NEAR_CAP = 256  # fallback rows order up to this many near-tied columns by differences


def _cosine_rows(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine's float64 rows and their unit (or zero) versions; checks finiteness.

    Where some row's norm lies outside [2^-200, 2^200] (or a nonzero row's underflows to
    0), every row is first scaled by a power of two to max |x| in [1/2, 1) (exact;
    cosines are scale-free), so neither the unit rows nor the raw products of
    :func:`_cosine_order` over- or underflow whatever F's range. Other features skip
    that (three passes over F).
    """
    require_finite(float(F.max()), float(F.min()))
    F = F.astype(np.float64, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", F, F))
    nonzero = norms[norms > 0.0]
    suspect = nonzero.shape[0] < norms.shape[0] and bool(np.any(F[norms == 0.0]))
    if suspect or nonzero.shape[0] and not 2.0**-200 <= nonzero.min() <= nonzero.max() <= 2.0**200:
        _, exponent = np.frexp(np.abs(F).max(axis=1))
        F = np.ldexp(F, -exponent[:, None])
        norms = np.sqrt(np.einsum("ij,ij->i", F, F))
    # A zero vector has no direction: keep it at the origin (similarity 0 to all).
    return F, F / np.where(norms > 0.0, norms, 1.0)[:, None]


def _scaled(F: np.ndarray) -> np.ndarray:
    """Euclidean rows scaled by a power of two to max |x| in [1/2, 1] (exact: no order
    changes), for features whose norms would over- or underflow float32 (see
    :func:`_norms_in_range`); the finiteness check rides on the extremes needed here."""
    shift = peak_exponent(F)
    if shift is None:
        return F
    # A product with a power of two rounds exactly as ldexp does and is ~5x faster; its
    # factor must be a normal number of F's dtype, so large shifts take ldexp.
    return F * F.dtype.type(2.0**-shift) if abs(shift) <= 100 else np.ldexp(F, -shift)


def _error_terms(d: int, h32: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Terms of the bound |float32 key - exact key| <= c (a_i a_j + h_j [+ h_i]) + tiny.

    The key ``[h_i +] h_j - <x_i, x_j>`` is a float32 dot product of length d on inputs
    rounded to float32 ((d + 2) u ||x_i|| ||x_j||), float32 half norms computed the same
    way ((d + 2) u h each) and one or two additions (u each of at most the sum of the
    terms): within (d + 4) u (||x_i|| ||x_j|| + h_j [+ h_i]) to first order; (d + 6) and
    10% slack cover the rest (and the ~2^-29 relative rounding of the float64 keys it is
    compared with), and ``tiny`` float32's gradual underflow (each of the ~4d float32
    operations behind a key loses at most 2^-150 to it, whatever the scale).

    Returns ``(a, h, c, tiny)``: a_i >= ||x_i|| and h_i >= the exact half norm, from the
    float32 ones ``h32`` (within (d + 2) u); unit (or zero) rows and h = 0 for cosine.
    """
    n = h32.shape[0]
    if metric == "cosine":
        return np.ones(n), np.zeros(n), 1.1 * (d + 6) * _U32, d * 2.0**-120
    h = h32.astype(np.float64) * (1.0 + (d + 2) * _U32)
    return np.sqrt(2.0 * h), h, 1.1 * (d + 6) * _U32, d * 2.0**-120


def _exact_neighbours(F: np.ndarray, X: np.ndarray, rows: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Float64 brute force for a few rows (fallback), chunked to ~32 MB of keys. ``F``:
    :func:`_cosine_rows` features for cosine (unused for Euclidean).

    Euclidean: float64 keys h_j - <x_i, x_j> by BLAS locate, within their rounding bound,
    every column that can be among the k nearest; those are then ordered by squared
    distances from float64 differences, so near-coincident points keep their true order.
    Cosine: every column by :func:`_cosine_order`, tie-exact on integer data.
    """
    n, d = X.shape
    out = np.empty((rows.shape[0], k), dtype=np.int64)
    X64 = X.astype(np.float64, copy=False)
    h = _half_norms(X64, metric)
    a = np.sqrt(2.0 * h)
    step = max(1, 2**22 // n)
    for start in range(0, rows.shape[0], step):
        part = rows[start : start + step]
        own = np.arange(part.shape[0])
        if metric == "cosine":
            keys = _cosine_order_all(F, part)
            keys[own, part] = np.inf
            out[start : start + step] = np.lexsort((np.broadcast_to(np.arange(n), keys.shape), keys), axis=1)[
                :, :k
            ]
            continue
        keys = h[None, :] - X64[part] @ X64.T
        keys[own, part] = np.inf
        # Each float64 key is within (d + 2) u64 (a_i a_j + h_j) of the exact one (the BLAS
        # product, h and one subtraction); 2x slack for the rest and gradual underflow.
        err = 2.0 * (d + 2) * 2.0**-53 * (a[part] * float(a.max()) + float(h.max())) + d * 2.0**-1000
        kth = np.partition(keys, k - 1, axis=1)[:, k - 1]
        for i, row in enumerate(part):
            near = np.flatnonzero(keys[i] <= kth[i] + 2.0 * err[i])
            if near.shape[0] <= _NEAR_CAP:
                diff = X64[near] - X64[row]
                exact = np.einsum("cd,cd->c", diff, diff)
            else:  # mass ties, e.g. repeated or integer points, where these keys are exact
                exact = keys[i, near]
            out[start + i] = near[np.lexsort((near, exact))[:k]]
    return out


def _cosine_order_all(F: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`_cosine_order` of every column for ``rows`` (a BLAS product: exact on
    integer data too, whose partial sums are exact in any order)."""
    F64 = F.astype(np.float64, copy=False)
    s = F64[rows] @ F64.T
    norms = np.broadcast_to(np.einsum("ij,ij->i", F64, F64), s.shape)
    return -np.divide(s * np.abs(s), norms, out=np.zeros_like(s), where=norms > 0.0)


def _cosine_order(F: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """-sign(s) s^2 / ||x_j||^2, s = <x_i, x_j>, from the raw features: ordered as -cos.

    Unlike -cos of normalised rows, it is exact on integer data (s and the norms are
    exact sums, and a correctly rounded quotient of equal rationals is equal), so equal
    cosines tie and the sample index decides. A zero x_j has cosine 0 with everything.
    """
    A = F[rows].astype(np.float64)
    B = F[cols].astype(np.float64)
    s = np.einsum("id,icd->ic", A, B)
    norms = np.einsum("icd,icd->ic", B, B)
    return -np.divide(s * np.abs(s), norms, out=np.zeros_like(s), where=norms > 0.0)


def _vote(neighbour_codes: np.ndarray, n_classes: int, tie_break: str) -> np.ndarray:
    """Majority vote over (m, k) neighbour labels ordered nearest first."""
    m, k = neighbour_codes.shape
    flat = (np.arange(m)[:, None] * n_classes + neighbour_codes).ravel()
    counts = np.bincount(flat, minlength=m * n_classes).reshape(m, n_classes).astype(np.float64)
    if tie_break == "smallest":
        return counts.argmax(axis=1)  # argmax keeps the first, i.e. the smallest label
    first_rank = np.full((m, n_classes), float(k))
    for j in range(k - 1, -1, -1):  # overwrite from the back so the nearest rank wins
        first_rank[np.arange(m), neighbour_codes[:, j]] = j
    return (counts * (k + 1) - first_rank).argmax(axis=1)


def knn_neighbours(
    F: Any,
    *,
    k: int = 3,
    metric: str = "euclidean",
    block_size: int = 1024,
) -> np.ndarray:
    """Indices of the k nearest other samples of every row, nearest first.

    Parameters
    ----------
    F : array-like of shape (n, d)
    k : int, default=3
    metric : {"euclidean", "cosine"}
    block_size : int, default=1024
        Rows per block; peak extra memory is a few ``block_size * max(block_size, d)``
        arrays plus ``n * (k + 3)`` candidates.

    Returns
    -------
    ndarray of shape (n, k), int64
        Exact float64 order; distance ties are broken by the smaller sample index.
    """
    return _neighbours(check_features(F, float32_ok=True, check_finite=False), k, metric, block_size)


def _float32_sets(
    X: np.ndarray,
    metric: str,
    keep: int,
    block: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
    """Per row the ``keep`` smallest float32 keys in ascending order, their columns, the
    float32 half norms and whether the keys hold h_i; None where :func:`_norms_in_range`
    rejects the (Euclidean) norms."""
    with np.errstate(over="ignore", invalid="ignore"):  # judged by _norms_in_range
        X32 = X.astype(np.float32, copy=False)
        if X.shape[0] <= block:
            sets = _single_block_sets(X32, metric, keep)
            return None if sets is None else (*sets, False)
        h32 = _half_norms(X32, metric, np.float32)
        if metric == "euclidean" and not _norms_in_range(h32):
            return None
        best_key, best_idx = _approximate_sets(X32, h32, keep, block)
    order = np.argsort(best_key, axis=1)
    return np.take_along_axis(best_key, order, axis=1), np.take_along_axis(best_idx, order, axis=1), h32, True


def _neighbours(
    F: np.ndarray, k: int, metric: str, block_size: int, codes: np.ndarray | None = None
) -> np.ndarray:
    """:func:`knn_neighbours` on features that passed ``check_features`` (float32 or float64;
    finiteness is checked here).

    With class ``codes``, rows whose vote the float32 keys already settle keep the float32
    order (their k nearest may differ from the exact ones only among equally labelled
    samples): what :func:`knn_accuracy` needs, without re-checking them.
    """
    check_choice(metric, ("euclidean", "cosine"), "metric")
    n = F.shape[0]
    k = check_positive_int(k, "k")
    if k >= n:
        raise InvalidParameterError(f"k must be smaller than the number of samples ({n}), got {k}")
    block = check_positive_int(block_size, "block_size")
    keep = k + _EXTRA + 1  # candidates plus one boundary key
    if metric == "cosine":
        F, X = _cosine_rows(F)
    else:  # used as it is unless its float32 norms say otherwise (then once more, scaled)
        X = F
    if keep > n - 1:
        return _exact_neighbours(F, X if metric == "cosine" else _scaled(F), np.arange(n), k, metric)
    # Keys are h_i + h_j - <x_i, x_j> from the blocked route, without h_i from the single
    # block (``row_h`` says which).
    sets = _float32_sets(X, metric, keep, block)
    if sets is None:
        X = _scaled(F)
        sets = _float32_sets(X, metric, keep, block)
        if sets is None:  # all-zero features: every key is 0, the index decides
            return _exact_neighbours(F, X, np.arange(n), k, metric)
    best_key, best_idx, h32, row_h = sets
    best_key = best_key.astype(np.float64)
    boundary, cand = best_key[:, -1], best_idx[:, :-1]
    a, h_bound, scale, tiny = _error_terms(X.shape[1], h32, metric)
    own = h_bound if row_h else np.zeros(n)
    # Bounds per candidate (their own norms) and for any column (the largest norms).
    err = scale * (a[:, None] * a[best_idx] + h_bound[best_idx] + own[:, None]) + tiny
    err_far = scale * (a * float(a.max()) + float(h_bound.max()) + own) + tiny
    low, high = best_key - err, best_key + err
    # Proven rows: the k smallest keys' error intervals are disjoint and in order, and the
    # k-th lies below every other column's: the other candidates' by their own bounds, the
    # rest (float32 keys >= boundary) by the largest. So the float32 order is exact.
    proven = (high[:, : k - 1] < low[:, 1:k]).all(axis=1) & (
        high[:, k - 1] < np.minimum(low[:, k:-1].min(axis=1), boundary - err_far)
    )
    if codes is not None:
        # Only the vote is wanted: a row is settled when every candidate that may be among
        # its k nearest (exact key possibly <= the k-th float32 key's upper bound, which
        # no non-candidate can reach) has one label; the float32 k nearest then vote it.
        upper = high[:, :k].max(axis=1)
        labels = codes[cand]
        may = low[:, :-1] <= upper[:, None]
        proven |= ((labels == labels[:, :1]) | ~may).all(axis=1) & (upper < boundary - err_far)
    out = best_idx[:, :k].copy()
    unproven = np.flatnonzero(~proven)
    for start in range(0, unproven.shape[0], block):
        rows = unproven[start : start + block]
        out[rows], kth = _exact_candidates(F, X, rows, cand[rows], k, metric, row_h)
        # No non-candidate can beat the k-th candidate unless within the rounding bound.
        redo = rows[~(kth < boundary[rows] - err_far[rows])]
        if redo.size:
            out[redo] = _exact_neighbours(F, X, redo, k, metric)
    return out


def _exact_candidates(
    F: np.ndarray, X: np.ndarray, rows: np.ndarray, c: np.ndarray, k: int, metric: str, row_h: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 order of the candidates ``c`` (r, w) of ``rows``: the k nearest (r, k), ties
    to the smaller index, and the k-th's key in the float32 keys' form, [h_i +] h_j -
    <x_i, x_j> (its float64 rounding is ~2^-29 of the bound it is compared within).

    Euclidean: squared distances from float64 differences, accurate even where points
    nearly coincide (h_i + h_j - <x_i, x_j> cancels there). Cosine:
    :func:`_cosine_order`. einsum, not a BLAS product: its sums run in order, so
    mathematically tied keys (integer data, repeated points) stay tied as in brute force.
    """
    if metric == "cosine":
        A = F[rows].astype(np.float64)
        keys = _cosine_order(F, rows, c)
    else:
        A = X[rows].astype(np.float64)
        B = X[c].astype(np.float64)
        B -= A[:, None, :]
        keys = np.einsum("icd,icd->ic", B, B)
    sel = np.lexsort((c, keys), axis=1)[:, :k]
    kth = np.take_along_axis(keys, sel[:, -1:], axis=1)[:, 0]
    own = np.einsum("id,id->i", A, A)
    if metric == "cosine":  # -cos = sign(key) sqrt(|key| / ||x_i||^2), 0 for a zero row
        form = np.sign(kth) * np.sqrt(np.divide(np.abs(kth), own, out=np.zeros_like(own), where=own > 0.0))
    else:
        form = 0.5 * kth - (0.0 if row_h else 0.5 * own)
    return np.take_along_axis(c, sel, axis=1), form


def knn_accuracy(
    F: Any,
    y: Any,
    *,
    k: int = 3,
    metric: str = "euclidean",
    tie_break: str = "nearest",
    block_size: int = 1024,
) -> float:
    """Leave-one-out kNN accuracy (higher is better).

    Parameters
    ----------
    F : array-like of shape (n, d)
    y : array-like of shape (n,)
        Class labels.
    k : int, default=3
        Neighbours per vote (3 as in transformer-ranker).
    metric : {"euclidean", "cosine"}, default="euclidean"
    tie_break : {"nearest", "smallest"}, default="nearest"
        Among classes tied on votes: the one of the nearest neighbour, or the smallest
        label (what ``torch.mode`` and so transformer-ranker do).
    block_size : int, default=1024

    Returns
    -------
    float in [0, 1]
    """
    check_choice(tie_break, ("nearest", "smallest"), "tie_break")
    F = check_features(F, float32_ok=True, check_finite=False)  # _neighbours checks it
    codes, classes = check_class_labels(y, F.shape[0])
    nbrs = _neighbours(F, k, metric, block_size, codes)
    pred = _vote(codes[nbrs], classes.shape[0], tie_break)
    return float((pred == codes).mean())
