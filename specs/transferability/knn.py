"""Exact leave-one-out k-nearest-neighbour accuracy of features F for labels y.

Each sample is classified by a majority vote of its k nearest *other* samples
(Euclidean or cosine). Rows are processed in blocks, so memory is O(block^2 + n k) and no
(n, n) or (chunk, n, d) array is ever built.

Why it is exact yet fast: candidate neighbours come from a float32 matrix product
(each symmetric block computed once, the diagonal ones by syrk), and a rigorous bound on
its rounding error proves the order: where consecutive float32 keys of a row's k + 1
nearest are further apart than twice the bound, the float32 order is the exact one. Only
the other rows (near-ties) have their candidates recomputed in float64, and where the
bound cannot exclude a non-candidate either, the whole row is.
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
)

_U32 = float(np.finfo(np.float32).eps) / 2.0  # unit roundoff of float32
_EXTRA = 2  # extra float32 candidates per row; makes fallback rows rare
_GROUPS = 8  # a block's rows are cut into this many slices to locate their smallest keys
_SLICES = 16  # the same for the single-block route (measured fastest at n = 1000)


def _prepare(F: np.ndarray, metric: str) -> np.ndarray:
    """Rows in the metric's geometry.

    Euclidean rows keep F's dtype (float32 or float64). Where max |x| lies outside
    [2^-20, 2^20] they are scaled by a power of two to max |x| in [1/2, 1]: exact, no
    order changes, and neither float32's products nor the float64 norms over- or
    underflow. Inside that range F itself is used: no overflow either, and underflow stays
    within the error bound's absolute term, whatever the scale; this saves a copy of F
    (and, for n = 1000 at d = 768, the page faults of re-mapping it on every call).
    Cosine rows are unit (or zero) float64 vectors.
    """
    if metric == "cosine":
        F = F.astype(np.float64, copy=False)
        norms = np.linalg.norm(F, axis=1, keepdims=True)
        # A zero vector has no direction: keep it at the origin (similarity 0 to all).
        return F / np.where(norms > 0.0, norms, 1.0)
    peak = max(float(F.max()), -float(F.min()))
    if peak > 0.0 and not 2.0**-20 <= peak <= 2.0**20:
        shift = int(np.ceil(np.log2(peak)))
        # A product with a power of two rounds exactly as ldexp does and is ~5x faster; its
        # factor must be a normal number of F's dtype, so large shifts take ldexp.
        F = F * F.dtype.type(2.0**-shift) if abs(shift) <= 100 else np.ldexp(F, -shift)
    return F


def _half_norms(X: np.ndarray, metric: str, dtype: type = np.float64) -> np.ndarray:
    """h = ||x||^2 / 2 per row in ``dtype`` arithmetic (zeros for cosine)."""
    if metric == "cosine":
        return np.zeros(X.shape[0], dtype=dtype)
    return 0.5 * np.einsum("ij,ij->i", X, X, dtype=dtype)


# The ordering key, smaller = closer, is symmetric so one block serves rows and columns:
# h_i + h_j - <x_i, x_j>, i.e. ||x_i - x_j||^2 / 2 (Euclidean, h = ||x||^2 / 2) or
# -cos(x_i, x_j) (cosine, h = 0).
def _keys64(A: np.ndarray, hA: np.ndarray, X: np.ndarray, h: np.ndarray) -> np.ndarray:
    keys = A @ X.T
    np.negative(keys, out=keys)
    keys += hA[:, None]
    keys += h[None, :]
    return keys


def _flat_hits(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a sparse C-contiguous boolean mask.

    Testing 8 flags per uint64 word and expanding only the non-zero words is ~1.7x faster
    than ``np.flatnonzero`` (and ~10x than 2-D ``np.nonzero``) when, as here, about one
    flag in a hundred or fewer is set.
    """
    flat_mask = mask.reshape(-1)
    if flat_mask.size % 8:
        return np.flatnonzero(flat_mask)
    words = flat_mask.view(np.uint64)
    nonzero = np.flatnonzero(words != 0)
    flags = np.flatnonzero(words[nonzero].view(np.bool_))
    return nonzero[flags >> 3] * 8 + (flags & 7)


def _hits(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-D boolean mask, in row-major order."""
    return np.divmod(_flat_hits(mask), mask.shape[1])


def _merge(best_key: np.ndarray, best_idx: np.ndarray, rows: np.ndarray, keys: np.ndarray,
           cols: np.ndarray, by_column: bool) -> None:
    """Fold a block of approximate keys into the running smallest sets of ``rows``.

    ``keys`` is (len(rows), len(cols)), or (len(cols), len(rows)) when ``by_column``:
    the transposed use of a symmetric block, read without copying it.
    """
    keep = best_key.shape[1]
    thr = best_key[rows].max(axis=1)
    if not np.isfinite(thr).all():
        smallest = _block_smallest(keys, keep, by_column)
        if smallest is not None:
            _fold(best_key, best_idx, rows, smallest[0], cols[smallest[1]])
            return
    if np.isfinite(thr).all():
        # Once a row's set is full only keys below its current worst can enter; after the
        # first blocks that is a handful per row, far cheaper than a partition of b keys.
        if by_column:
            hit_col, hit_row = _hits(keys < thr[None, :])
            order = np.argsort(hit_row, kind="stable")
            hit_row, hit_col = hit_row[order], hit_col[order]
        else:
            hit_row, hit_col = _hits(keys < thr[:, None])
        if hit_row.size == 0:
            return
        counts = np.bincount(hit_row, minlength=rows.shape[0])
        width = int(counts.max())
        if width <= cols.shape[0] // 4:
            pos = np.arange(hit_row.size) - (np.cumsum(counts) - counts)[hit_row]
            sub = np.flatnonzero(counts)
            pad_key = np.full((rows.shape[0], width), np.inf, dtype=keys.dtype)
            pad_idx = np.full((rows.shape[0], width), -1, dtype=np.int64)
            pad_key[hit_row, pos] = keys[hit_col, hit_row] if by_column else keys[hit_row, hit_col]
            pad_idx[hit_row, pos] = cols[hit_col]
            _fold(best_key, best_idx, rows[sub], pad_key[sub], pad_idx[sub])
            return
    if by_column:
        keys = np.ascontiguousarray(keys.T)
    if keys.shape[1] > keep:
        part = np.argpartition(keys, keep - 1, axis=1)[:, :keep]
        keys, idx = np.take_along_axis(keys, part, axis=1), cols[part]
    else:
        idx = np.broadcast_to(cols, keys.shape)
    _fold(best_key, best_idx, rows, keys, idx)


def _block_smallest(keys: np.ndarray, keep: int, by_column: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row of ``keys`` (column if ``by_column``): a few keys holding its ``keep`` smallest, and their positions.

    The row is cut into ``_GROUPS`` slices of m keys; group j holds position j of every
    slice. The ``keep`` groups with the smallest minima hold ``keep`` keys no larger than
    any key outside them, so the row's ``keep`` smallest are among their ``_GROUPS * keep``
    keys (and the tail past the last slice): small partitions instead of one over the
    whole row. None where the block is too narrow for it.
    """
    if by_column:
        keys = keys.T  # a view: the loops below read rows of the original block
    width = keys.shape[1]
    m = width // _GROUPS
    if m < keep:
        return None
    low = keys[:, :m].copy()
    for g in range(1, _GROUPS):
        np.minimum(low, keys[:, g * m : (g + 1) * m], out=low)
    # The keep smallest minima: a partition of the values and a sparse mask is cheaper than
    # an argpartition, and gives exactly keep groups per row unless minima tie.
    tau = np.partition(low, keep - 1, axis=1)[:, keep - 1]
    hit_row, hit_col = _hits(low <= tau[:, None])
    if hit_row.shape[0] == keep * low.shape[0]:
        groups = hit_col.reshape(-1, keep)
    else:
        groups = np.argpartition(low, keep - 1, axis=1)[:, :keep]
    pos = (groups[:, None, :] + m * np.arange(_GROUPS)[None, :, None]).reshape(keys.shape[0], -1)
    if width > _GROUPS * m:
        pos = np.hstack((pos, np.broadcast_to(np.arange(_GROUPS * m, width), (keys.shape[0], width - _GROUPS * m))))
    return np.take_along_axis(keys, pos, axis=1), pos


def _fold(best_key: np.ndarray, best_idx: np.ndarray, rows: np.ndarray, keys: np.ndarray,
          idx: np.ndarray) -> None:
    """Keep, for each of ``rows``, the smallest ``keep`` of its set and the new keys."""
    keep = best_key.shape[1]
    cat_key = np.hstack((best_key[rows], keys))
    cat_idx = np.hstack((best_idx[rows], idx))
    part = np.argpartition(cat_key, keep - 1, axis=1)[:, :keep]
    best_key[rows] = np.take_along_axis(cat_key, part, axis=1)
    best_idx[rows] = np.take_along_axis(cat_idx, part, axis=1)


def _approximate_sets(X32: np.ndarray, h32: np.ndarray, keep: int, block: int,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``keep`` smallest float32 keys and their columns (self excluded).

    The key matrix is symmetric, so each off-diagonal block is computed once and serves
    its rows and its columns: half the multiply-adds of a full pass. Diagonal blocks are
    ``A A^T``, which numpy hands to syrk (one triangle: half again); the norms are added
    afterwards, as folding them into the product would make the operands differ.
    """
    n = X32.shape[0]
    best_key = np.full((n, keep), np.inf, dtype=np.float32)
    best_idx = np.full((n, keep), -1, dtype=np.int64)
    for i in range(0, n, block):
        rows_i = np.arange(i, min(i + block, n))
        for j in range(i, n, block):
            rows_j = np.arange(j, min(j + block, n))
            keys = X32[i : i + block] @ X32[j : j + block].T
            np.subtract(h32[i : i + block, None], keys, out=keys)
            keys += h32[None, j : j + block]
            if i == j:
                np.fill_diagonal(keys, np.inf)
                _merge(best_key, best_idx, rows_i, keys, rows_i, by_column=False)
                continue
            _merge(best_key, best_idx, rows_i, keys, rows_j, by_column=False)
            _merge(best_key, best_idx, rows_j, keys, rows_i, by_column=True)
    return best_key, best_idx


def _row_smallest(keys: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``keys``, its ``keep`` smallest keys in ascending order and their columns.

    tau, the keep-th smallest of the row's slice minima (``_SLICES`` slices, minimum taken
    position by position), is at least the row's keep-th smallest key, as keep distinct
    keys are no larger. So the keys <= tau hold the keep smallest; they are usually just
    those keep (more only where two share a position), and one sparse mask over the block
    finds them: two passes over it instead of a partition of every row.
    """
    n, width = keys.shape
    m = width // _SLICES
    if m < keep:  # too narrow for slices: a small block, partition it whole
        tau = np.partition(keys, keep - 1, axis=1)[:, keep - 1 : keep]
    else:
        low = keys[:, :m].copy()
        for g in range(1, _SLICES):
            np.minimum(low, keys[:, g * m : (g + 1) * m], out=low)
        tau = np.partition(low, keep - 1, axis=1)[:, keep - 1 : keep]
    flat = _flat_hits(keys <= tau)  # row by row
    rows, cols = np.divmod(flat, width)
    vals = keys.reshape(-1)[flat]
    if flat.shape[0] == keep * n:
        vals, cols = vals.reshape(n, keep), cols.reshape(n, keep)
    else:
        counts = np.bincount(rows, minlength=n)
        pos = np.arange(flat.shape[0]) - (np.cumsum(counts) - counts)[rows]
        pad_val = np.full((n, int(counts.max())), np.inf, dtype=keys.dtype)
        pad_col = np.zeros(pad_val.shape, dtype=np.int64)
        pad_val[rows, pos], pad_col[rows, pos] = vals, cols
        vals, cols = pad_val, pad_col
    order = np.argsort(vals, axis=1)[:, :keep]
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(cols, order, axis=1)


def _single_block_sets(X32: np.ndarray, metric: str, keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_approximate_sets` for n <= block, sorted, with keys ``h_j - <x_i, x_j>``; and h32.

    One syrk and one selection over the whole (n, n) block. The row's own h_i is left
    out: a constant per row, it changes neither the row's order nor the gaps the proof
    reads, and saves a pass (its rounding is still inside :func:`_error_bound`). The
    float32 half norms are read off the product's diagonal: float32 dot products like
    any other, within the same bound, without a pass over X.
    """
    keys = X32 @ X32.T
    h32 = 0.5 * np.diagonal(keys) if metric == "euclidean" else np.zeros(X32.shape[0], dtype=np.float32)
    np.subtract(h32, keys, out=keys)
    np.fill_diagonal(keys, np.inf)
    return (*_row_smallest(keys, keep), h32)


def _error_bound(d: int, h: np.ndarray, metric: str) -> np.ndarray:
    """Per row, a bound on |float32 key - exact key| for every column.

    The key ``h_i + h_j - <x_i, x_j>`` is a float32 dot product of length d on inputs
    rounded to float32 ((d + 2) u ||x_i|| ||x_j||), float32 half norms computed the same
    way ((d + 2) u h each) and two additions (u each of at most h_i + h_j + ||x_i|| ||x_j||):
    within (d + 4) u (||x_i|| ||x_j|| + h_i + h_j) to first order; (d + 6) and 10% slack
    cover the rest, and an absolute term float32's gradual underflow (each of the ~4d
    float32 operations behind a key loses at most 2^-150 to it, whatever the scale).
    ``h`` must bound the exact half norms from above.
    """
    # Rows are unit (or zero) vectors for cosine (h = 0), and ||x|| = sqrt(2 h) otherwise.
    a_norm = np.sqrt(2.0 * h) if metric == "euclidean" else np.ones(h.shape[0])
    return 1.1 * (d + 6) * _U32 * (a_norm * float(a_norm.max()) + h + float(h.max())) + d * 2.0**-120


def _exact_neighbours(A: np.ndarray, hA: np.ndarray, X: np.ndarray, h: np.ndarray,
                      rows: np.ndarray, k: int) -> np.ndarray:
    """Float64 brute force for a few rows (fallback)."""
    keys = _keys64(A.astype(np.float64, copy=False), hA, X.astype(np.float64, copy=False), h)
    keys[np.arange(rows.shape[0]), rows] = np.inf
    idx = np.broadcast_to(np.arange(X.shape[0]), keys.shape)
    return np.lexsort((idx, keys), axis=1)[:, :k]


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


def knn_neighbours(F: Any, *, k: int = 3, metric: str = "euclidean", block_size: int = 1024,
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
    return _neighbours(check_features(F, float32_ok=True), k, metric, block_size)


def _neighbours(F: np.ndarray, k: int, metric: str, block_size: int) -> np.ndarray:
    """:func:`knn_neighbours` on features that passed ``check_features`` (float32 or float64)."""
    check_choice(metric, ("euclidean", "cosine"), "metric")
    n = F.shape[0]
    k = check_positive_int(k, "k")
    if k >= n:
        raise InvalidParameterError(f"k must be smaller than the number of samples ({n}), got {k}")
    block = check_positive_int(block_size, "block_size")
    X = _prepare(F, metric)
    keep = k + _EXTRA + 1  # candidates plus one boundary key
    if keep > n - 1:
        h = _half_norms(X, metric)
        return _exact_neighbours(X, h, X, h, np.arange(n), k)
    X32 = X.astype(np.float32, copy=False)
    # float32 norms: their rounding (within gamma_d h) is part of the error bound; float64
    # ones are computed only for the rows that need exact keys. Keys are h_i + h_j -
    # <x_i, x_j> from the blocked route, without h_i from the single block; ``row_h``
    # says whether the float64 re-check adds it to match.
    if n <= block:
        best_key, best_idx, h32 = _single_block_sets(X32, metric, keep)
        row_h = False
    else:
        h32 = _half_norms(X32, metric, np.float32)
        best_key, best_idx = _approximate_sets(X32, h32, keep, block)
        order = np.argsort(best_key, axis=1)
        best_key, best_idx = np.take_along_axis(best_key, order, axis=1), np.take_along_axis(best_idx, order, axis=1)
        row_h = True
    best_key = best_key.astype(np.float64)
    boundary, cand = best_key[:, -1], best_idx[:, :-1]
    err = _error_bound(X.shape[1], h32.astype(np.float64) * (1.0 + (X.shape[1] + 2) * _U32), metric)
    # Proven rows: each of the k + 1 smallest float32 keys is more than 2 err above the one
    # before, so exact keys keep that strict order and nothing else comes closer.
    proven = (np.diff(best_key[:, : k + 1], axis=1) > 2.0 * err[:, None]).all(axis=1)
    out = best_idx[:, :k].copy()
    unproven = np.flatnonzero(~proven)
    h = None  # float64 half norms of all rows, for the rare rows recomputed entirely
    for start in range(0, unproven.shape[0], block):
        rows = unproven[start : start + block]
        c = cand[rows]
        exact = _half_norms(X[c.ravel()], metric).reshape(c.shape)
        if row_h:
            exact += _half_norms(X[rows], metric)[:, None]
        # einsum, not a BLAS product: its sums run in order, so mathematically tied keys
        # (integer data, repeated cosines) stay tied as in brute force, and the index decides.
        exact -= np.einsum("id,icd->ic", X[rows], X[c], dtype=np.float64)
        sel = np.lexsort((c, exact), axis=1)[:, :k]  # ties broken by sample index
        out[rows] = np.take_along_axis(c, sel, axis=1)
        kth = np.take_along_axis(exact, sel[:, -1:], axis=1)[:, 0]
        # No non-candidate can beat the k-th candidate unless within the rounding bound.
        redo = rows[~(kth < boundary[rows] - err[rows])]
        if redo.size:
            if h is None:
                h = _half_norms(X, metric)
            out[redo] = _exact_neighbours(X[redo], h[redo], X, h, redo, k)
    return out


def knn_accuracy(F: Any, y: Any, *, k: int = 3, metric: str = "euclidean",
                 tie_break: str = "nearest", block_size: int = 1024) -> float:
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
    F = check_features(F, float32_ok=True)
    codes, classes = check_class_labels(y, F.shape[0])
    nbrs = _neighbours(F, k, metric, block_size)
    pred = _vote(codes[nbrs], classes.shape[0], tie_break)
    return float((pred == codes).mean())
