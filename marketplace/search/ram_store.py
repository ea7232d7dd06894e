"""The in-memory re-rank store of a space's search index: compact RKMEs keyed by id (its on-disk
twin, same API and quantisation, is ``rkme_store.DiskRerankStore``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from marketplace.search.index_format import SNAPSHOT_ROWS
from marketplace.search.rkme_store import record_dtype


class RerankStore:
    """Compact RKMEs (padded to the largest K seen) keyed by id, with exact self-terms.

    ``float16`` keeps Z to ~3 significant digits. ``int8`` keeps Z as uint8 codes on a
    per-spec, per-column grid ``lo + code * step`` (256 levels over the column's range,
    half the memory of float16); a per-point scale lost the top-1 on 5 % of test queries.
    """

    on_disk = False
    ids: np.ndarray  # the columns, allocated by _alloc
    Z: np.ndarray
    lo: np.ndarray
    scale: np.ndarray
    beta: np.ndarray
    st: np.ndarray

    def __init__(self, d: int, dtype: str = "float16", capacity: int = 64) -> None:
        if dtype not in ("float16", "int8"):
            raise ValueError(f"dtype must be 'float16' or 'int8', got {dtype!r}")
        self.d, self.dtype, self.K, self.n = d, dtype, 1, 0
        self.row: dict[int, int] = {}
        self._alloc(capacity, 1)

    def _alloc(self, capacity: int, K: int) -> None:
        old = (
            (
                self.ids[: self.n],
                self.Z[: self.n],
                self.lo[: self.n],
                self.scale[: self.n],
                self.beta[: self.n],
                self.st[: self.n],
            )
            if self.n
            else None
        )
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.Z = np.zeros((capacity, K, self.d), dtype=np.uint8 if self.dtype == "int8" else np.float16)
        self.lo = np.zeros((capacity, self.d), dtype=np.float32)
        self.scale = np.ones((capacity, self.d), dtype=np.float32)
        self.beta = np.zeros((capacity, K), dtype=np.float32)
        self.st = np.zeros(capacity, dtype=np.float64)
        if old is not None:
            Kold = old[1].shape[1]
            self.ids[: self.n], self.lo[: self.n], self.scale[: self.n], self.st[: self.n] = (
                old[0],
                old[2],
                old[3],
                old[5],
            )
            self.Z[: self.n, :Kold], self.beta[: self.n, :Kold] = old[1], old[4]
        self.K = K

    def __len__(self) -> int:
        return self.n

    def put(
        self, ids: np.ndarray, Zs: list[np.ndarray], betas: list[np.ndarray], self_terms: np.ndarray
    ) -> None:
        """Insert or replace specs; ``Zs[i]`` is (K_i, d) float64, ``betas[i]`` (K_i,)."""
        need_K = max([self.K, *(z.shape[0] for z in Zs)])
        need_cap = self.n + len(ids)
        if need_K > self.K or need_cap > self.ids.shape[0]:
            self._alloc(max(need_cap, 2 * self.ids.shape[0]), need_K)
        for i, ident in enumerate(np.asarray(ids, dtype=np.int64).tolist()):
            r = self.row.get(ident)
            if r is None:
                r, self.n = self.n, self.n + 1
                self.row[ident] = r
            Z, k = np.asarray(Zs[i], dtype=np.float64), Zs[i].shape[0]
            self.ids[r], self.st[r] = ident, float(self_terms[i])
            self.Z[r], self.lo[r], self.scale[r], self.beta[r] = 0, 0, 1, 0
            if self.dtype == "int8":
                lo = Z.min(axis=0)
                step = np.maximum(Z.max(axis=0) - lo, 1e-30) / 255.0
                self.Z[r, :k] = np.rint((Z - lo) / step).astype(np.uint8)
                self.lo[r], self.scale[r] = lo, step
            else:
                self.Z[r, :k] = Z
            self.beta[r, :k] = betas[i]

    def remove(self, ids: np.ndarray) -> None:
        for ident in np.asarray(ids, dtype=np.int64).tolist():
            r = self.row.pop(ident, None)
            if r is None:
                continue
            last = self.n - 1
            if r != last:  # move the last row into the hole so rows stay dense
                for arr in (self.ids, self.Z, self.lo, self.scale, self.beta, self.st):
                    arr[r] = arr[last]
                self.row[int(self.ids[r])] = r
            self.n = last

    def gather(self, ids: np.ndarray, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Zs (m, K, d), betas (m, K), self_terms (m,) float64) of known ids."""
        rows = np.fromiter((self.row[int(i)] for i in ids), dtype=np.int64, count=len(ids))
        Zs: np.ndarray = self.Z[rows].astype(dtype)
        if self.dtype == "int8":
            Zs *= self.scale[rows][:, None, :]
            Zs += self.lo[rows][:, None, :]  # padded points decode to lo but carry weight 0
        return Zs, self.beta[rows].astype(dtype), self.st[rows]

    def nbytes(self) -> int:
        return sum(a[: self.n].nbytes for a in (self.ids, self.Z, self.lo, self.scale, self.beta, self.st))

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("ids", "Z", "lo", "scale", "beta", "st")
        return {name: getattr(self, name)[: self.n] for name in names}

    def iter_records(self, rows: int = SNAPSHOT_ROWS) -> Iterator[np.ndarray]:
        """Rows as ``rkme_store.record_dtype`` records, ``rows`` at a time (the disk store's layout)."""
        rec = record_dtype(self.d, self.K, self.dtype)
        for lo in range(0, self.n, rows):
            hi = min(lo + rows, self.n)
            out = np.empty(hi - lo, dtype=rec)
            for name in ("ids", "st", "beta", "lo", "scale", "Z"):
                out[name] = getattr(self, name)[lo:hi]
            yield out

    @classmethod
    def from_records(cls, d: int, dtype: str, K: int, n: int, chunks: Iterable[np.ndarray]) -> RerankStore:
        """A store of ``n`` rows filled from record chunks in row order (a streamed snapshot)."""
        store = cls(d, dtype, capacity=max(n, 1))
        store._alloc(max(n, 1), max(K, 1))
        rec = record_dtype(d, max(K, 1), dtype)
        for part in chunks:
            part = np.ascontiguousarray(part).view(rec).reshape(-1)
            lo, hi = store.n, store.n + len(part)
            if hi > n:
                raise ValueError(f"snapshot holds more than the {n} re-rank records its header declares")
            for name in ("ids", "st", "beta", "lo", "scale", "Z"):
                getattr(store, name)[lo:hi] = part[name]
            store.n = hi
        store.row = {int(i): r for r, i in enumerate(store.ids[: store.n].tolist())}
        if store.n != n or len(store.row) != n:
            raise ValueError(
                f"snapshot re-rank records: {store.n} read, {len(store.row)} distinct ids, {n} declared"
            )
        return store

    @classmethod
    def from_arrays(cls, d: int, dtype: str, arrays: dict[str, np.ndarray]) -> RerankStore:
        n, K = arrays["Z"].shape[:2]
        store = cls(d, dtype, capacity=max(n, 1))
        store._alloc(max(n, 1), max(K, 1))
        store.n = n
        for name in ("ids", "Z", "lo", "scale", "beta", "st"):
            getattr(store, name)[:n] = arrays[name]
        store.row = {int(i): r for r, i in enumerate(arrays["ids"].tolist())}
        return store
