"""float32 candidate neighbours for :mod:`specs.transferability.knn` (private).

Per row, the ``keep`` smallest float32 keys [h_i +] h_j - <x_i, x_j> and their columns:
block by block for large n (each symmetric block computed once, diagonal ones by syrk),
in one syrk and one selection over contiguous rows for n <= block. Exactness is the
caller's business: it proves or re-ranks these candidates.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas

_GROUPS = 8  # a block's rows are cut into this many slices to locate their smallest keys
_BLOCKS = 20  # row blocks whose maxima set the single-block route's thresholds (fastest at n = 1000)


def _norms_in_range(h32: np.ndarray) -> bool:
    """Whether float32 half norms say F can be used as it is: finite (so was F), no key can
    overflow (|<x_i, x_j>| <= 2 max h <= 2^61) and underflow stays within the error
    bound's absolute term. Checking them after the product saves a pass over F, which
    otherwise costs as much as the whole selection's slowest step. All zeros may be F
    underflowing float32: F gets checked (and, if all zero, its product runs twice)."""
    return 2.0**-40 <= float(h32.max()) <= 2.0**60


def _half_norms(X: np.ndarray, metric: str, dtype: type = np.float64) -> np.ndarray:
    """h = ||x||^2 / 2 per row in ``dtype`` arithmetic (zeros for cosine)."""
    if metric == "cosine":
        return np.zeros(X.shape[0], dtype=dtype)
    return 0.5 * np.einsum("ij,ij->i", X, X, dtype=dtype)


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


def _merge(
    best_key: np.ndarray,
    best_idx: np.ndarray,
    rows: np.ndarray,
    keys: np.ndarray,
    cols: np.ndarray,
    by_column: bool,
) -> None:
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
    """Per row of ``keys`` (column if ``by_column``): a few keys holding its ``keep`` smallest, and their
    positions.

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
        pos = np.hstack(
            (pos, np.broadcast_to(np.arange(_GROUPS * m, width), (keys.shape[0], width - _GROUPS * m)))
        )
    return np.take_along_axis(keys, pos, axis=1), pos


def _fold(
    best_key: np.ndarray, best_idx: np.ndarray, rows: np.ndarray, keys: np.ndarray, idx: np.ndarray
) -> None:
    """Keep, for each of ``rows``, the smallest ``keep`` of its set and the new keys."""
    keep = best_key.shape[1]
    cat_key = np.hstack((best_key[rows], keys))
    cat_idx = np.hstack((best_idx[rows], idx))
    part = np.argpartition(cat_key, keep - 1, axis=1)[:, :keep]
    best_key[rows] = np.take_along_axis(cat_key, part, axis=1)
    best_idx[rows] = np.take_along_axis(cat_idx, part, axis=1)


def _approximate_sets(
    X32: np.ndarray,
    h32: np.ndarray,
    keep: int,
    block: int,
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


def _column_largest(M: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the (n, n) ``M``, its ``keep`` largest entries in descending order and their rows.

    tau, a column's keep-th largest block maximum (rows cut into ``_BLOCKS`` contiguous
    blocks, the last one taking the remainder), is at most the column's keep-th largest
    entry, since keep distinct entries reach it. So the entries >= tau hold the keep
    largest, and are usually just those keep and a few more (~6.9k hits for 6k at
    n = 1000). Every pass runs over whole contiguous rows (block maxima, one comparison
    with a row of thresholds), which numpy streams several times faster than a row-wise
    selection; only the hits are sorted.
    """
    n = M.shape[0]
    blocks = max(_BLOCKS, 2 * keep)
    rows_per = n // blocks
    if rows_per < 2:  # a small matrix: partition it whole
        tau = np.partition(M, n - keep, axis=0)[n - keep]
    else:
        body = blocks * rows_per
        high = np.maximum.reduce(M[:body].reshape(blocks, rows_per, n), axis=1)
        if body < n:
            np.maximum(high[-1], M[body:].max(axis=0), out=high[-1])
        tau = np.partition(high, blocks - keep, axis=0)[blocks - keep]
    # A strided row of thresholds would put numpy's comparison on its slow path (~5x).
    tau = np.ascontiguousarray(tau)
    flat = _flat_hits(np.greater_equal(M, tau))
    rows, cols = np.divmod(flat, n)
    vals = M.reshape(-1)[flat]
    bits = max(1, (n - 1).bit_length())
    if 2 * bits + 32 <= 63:
        # One sort of 64-bit words (column, value descending, row) groups each column's
        # hits, largest first: numpy sorts integers with SIMD, ~5x faster than argsorts.
        word = (cols.astype(np.uint64) << np.uint64(32 + bits)) | (_ascending_bits(-vals) << np.uint64(bits))
        word = np.sort(word | rows.astype(np.uint64))
        counts = np.bincount(cols, minlength=n)  # >= keep each
        word = word[(np.cumsum(counts) - counts)[:, None] + np.arange(keep)]
        rows = (word & np.uint64((1 << bits) - 1)).astype(np.int64)
        return M.reshape(-1)[rows * n + np.arange(n)[:, None]], rows
    order = np.lexsort((-vals, cols))
    counts = np.bincount(cols, minlength=n)
    pick = order[(np.cumsum(counts) - counts)[:, None] + np.arange(keep)]
    return vals[pick], rows[pick]


def _ascending_bits(v: np.ndarray) -> np.ndarray:
    """float32 -> uint64 preserving order (finite values; -0.0 sorts before 0.0)."""
    u = v.view(np.uint32).astype(np.uint64)
    # Negative floats order backwards as integers: flip all their bits; set positives' sign bit.
    return np.where(u >> np.uint64(31), u ^ np.uint64(0xFFFFFFFF), u | np.uint64(0x80000000))


def _single_block_sets(
    X32: np.ndarray,
    metric: str,
    keep: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`_approximate_sets` for n <= block, sorted, with keys ``h_j - <x_i, x_j>``; and
    h32. None where :func:`_norms_in_range` rejects the norms (F is then checked, scaled).

    One syrk; then M[j, i] = <x_i, x_j> - h_j, so column i of M is row i's keys negated
    (the product is symmetric) and the selection reads contiguous rows. The row's own h_i
    is left out: a constant per row, it changes neither the row's order nor the gaps the
    proof reads (its rounding is still inside the bound of ``knn._error_terms``). The float32 half
    norms are read off the product's diagonal: float32 dot products like any other,
    within the same bound, without a pass over X.
    """
    n = X32.shape[0]
    M = X32 @ X32.T
    if metric == "euclidean":
        h32 = 0.5 * np.diagonal(M)
        if not _norms_in_range(h32):
            return None
        # M -= h 1^T in place as one BLAS rank-1 update (sger on the Fortran view M^T);
        # ~2x faster than numpy's broadcast subtraction.
        blas.sger(-1.0, np.ones(n, dtype=np.float32), h32, a=M.T, overwrite_a=True)
    else:
        h32 = np.zeros(n, dtype=np.float32)
    np.fill_diagonal(M, -np.inf)
    neg_keys, idx = _column_largest(M, keep)
    return -neg_keys, idx, h32
