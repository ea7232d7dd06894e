"""The re-rank store on local disk: fixed-size records read with parallel ``pread``.

At 1M specs x K = 100 x d = 64 the float16 RKMEs take 11.9 GiB, the int8 ones ~6.5 GiB, too
much RAM beside the FAISS index and the web process. ``DiskRerankStore`` keeps one record
per spec in an anonymous file under a local directory (``settings.LWM_INDEX_DIR``): the file
is unlinked as soon as it is opened, so a dead process leaves nothing behind, and every
process holds its own (indexes are process-local, see ``store.py``). Only ``id -> slot``
lives in RAM (~100 B per spec). ``gather`` reads the k' candidates' records with
``os.pread`` straight into one buffer, sorted by offset and split over a small thread pool
(``pread`` releases the GIL); never fancy indexing on a memmap, which faults page by page.

The API and the decoded values are those of ``ram_store.RerankStore`` (same quantisation), so
the two are interchangeable and snapshots are the same bytes either way.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from marketplace.search.index_format import SNAPSHOT_ROWS

READ_THREADS = 4  # enough to overlap a local SSD's latency; the work per record is a memcpy
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child (prefork worker) has none of the parent's threads


os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="rkme-pread")
        return _POOL


def record_dtype(d: int, K: int, dtype: str) -> np.dtype:
    """One spec's record: id, self-term, beta (K,), per-column grid lo/step (d,), Z codes (K, d)."""
    code = np.uint8 if dtype == "int8" else np.float16
    return np.dtype(
        [
            ("ids", "<i8"),
            ("st", "<f8"),
            ("beta", "<f4", (K,)),
            ("lo", "<f4", (d,)),
            ("scale", "<f4", (d,)),
            ("Z", code, (K, d)),
        ]
    )


class DiskRerankStore:
    """Compact RKMEs keyed by id, one fixed-size record each in a local file.

    Parameters
    ----------
    d : int
        Dimension of the space.
    dtype : {"float16", "int8"}
        Encoding of Z, as in ``RerankStore``.
    directory : str or Path
        Local directory for the (anonymous) file; created if missing.
    K : int
        Initial points per record; a wider spec rewrites the file once with a larger K.
    """

    on_disk = True

    def __init__(self, d: int, dtype: str = "float16", directory: str | Path = ".", K: int = 1) -> None:
        if dtype not in ("float16", "int8"):
            raise ValueError(f"dtype must be 'float16' or 'int8', got {dtype!r}")
        self.d, self.dtype, self.K, self.n = d, dtype, max(int(K), 1), 0
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.row: dict[int, int] = {}
        self._rec = record_dtype(d, self.K, dtype)
        self._file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115 - lives as long as the store; unlinked, the kernel frees it with us
        self._io = threading.Lock()  # writers vs. a concurrent reader of a moved record

    @property
    def fd(self) -> int:
        return self._file.fileno()

    def __len__(self) -> int:
        return self.n

    def close(self) -> None:
        self._file.close()

    # -- raw record I/O ------------------------------------------------------------------
    def _write(self, slot: int, records: np.ndarray) -> None:
        data = np.ascontiguousarray(records, dtype=self._rec).tobytes()
        offset, done = slot * self._rec.itemsize, 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], offset + done)

    def _read_into(self, out: np.ndarray, slots: np.ndarray) -> None:
        """Fill ``out[i]`` with record ``slots[i]`` (slots ascending for sequential-ish I/O)."""
        size, view = self._rec.itemsize, out.view(np.uint8).reshape(-1).data
        for i, slot in enumerate(slots.tolist()):
            buf, offset = view[i * size : (i + 1) * size], slot * size
            got = os.preadv(self.fd, [buf], offset)
            while got < size:  # short reads are legal; finish the record
                got += os.preadv(self.fd, [buf[got:]], offset + got)

    def _read(self, slots: np.ndarray) -> np.ndarray:
        order = np.argsort(slots, kind="stable")
        sorted_slots = slots[order]
        buf = np.empty(len(slots), dtype=self._rec)
        parts = np.array_split(np.arange(len(slots)), min(READ_THREADS, max(len(slots) // 16, 1)))
        if len(parts) == 1:
            self._read_into(buf, sorted_slots)
        else:
            jobs = [
                _pool().submit(self._read_into, buf[p[0] : p[-1] + 1], sorted_slots[p])
                for p in parts
                if p.size
            ]
            for job in jobs:
                job.result()
        out = np.empty_like(buf)
        out[order] = buf
        return out

    # -- the RerankStore API -------------------------------------------------------------
    def _encode(self, ident: int, Z: np.ndarray, beta: np.ndarray, st: float) -> np.ndarray:
        rec = np.zeros((), dtype=self._rec)
        k = Z.shape[0]
        rec["ids"], rec["st"], rec["scale"] = ident, st, 1.0
        if self.dtype == "int8":
            lo = Z.min(axis=0)
            step = np.maximum(Z.max(axis=0) - lo, 1e-30) / 255.0
            rec["Z"][:k] = np.rint((Z - lo) / step).astype(np.uint8)
            rec["lo"], rec["scale"] = lo, step
        else:
            rec["Z"][:k] = Z
        rec["beta"][:k] = beta
        return rec

    def _widen(self, K: int) -> None:
        """Rewrite every record with K points (rare: the space's first wider spec)."""
        old = self._read(np.arange(self.n)) if self.n else np.empty(0, dtype=self._rec)
        new_rec = record_dtype(self.d, K, self.dtype)
        new = np.zeros(self.n, dtype=new_rec)
        for name in ("ids", "st", "lo", "scale"):
            new[name] = old[name]
        new["beta"][:, : self.K], new["Z"][:, : self.K] = old["beta"], old["Z"]
        self._file.close()
        self._file, self._rec, self.K = tempfile.TemporaryFile(dir=self.directory), new_rec, K  # noqa: SIM115
        if self.n:
            self._write(0, new)

    def put(
        self, ids: np.ndarray, Zs: list[np.ndarray], betas: list[np.ndarray], self_terms: np.ndarray
    ) -> None:
        """Insert or replace specs; ``Zs[i]`` is (K_i, d), ``betas[i]`` (K_i,)."""
        with self._io:
            need_K = max([self.K, *(z.shape[0] for z in Zs)])
            if need_K > self.K:
                self._widen(need_K)
            ids = np.asarray(ids, dtype=np.int64).tolist()
            records = np.empty(len(ids), dtype=self._rec)
            slots = np.empty(len(ids), dtype=np.int64)
            for i, ident in enumerate(ids):
                r = self.row.get(ident)
                if r is None:
                    r, self.n = self.n, self.n + 1
                    self.row[ident] = r
                slots[i] = r
                records[i] = self._encode(
                    ident, np.asarray(Zs[i], dtype=np.float64), betas[i], float(self_terms[i])
                )
            # appends are one contiguous run: one write; replacements go one by one
            runs = np.flatnonzero(np.diff(slots) != 1) + 1
            for part_slots, part in zip(np.split(slots, runs), np.split(records, runs), strict=True):
                if part_slots.size:
                    self._write(int(part_slots[0]), part)

    def remove(self, ids: np.ndarray) -> None:
        with self._io:
            for ident in np.asarray(ids, dtype=np.int64).tolist():
                r = self.row.pop(ident, None)
                if r is None:
                    continue
                last = self.n - 1
                if r != last:  # move the last record into the hole so the file stays dense
                    moved = self._read(np.array([last]))
                    self._write(r, moved)
                    self.row[int(moved["ids"][0])] = r
                self.n = last
            os.ftruncate(self.fd, self.n * self._rec.itemsize)

    def gather(self, ids: np.ndarray, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Zs (m, K, d), betas (m, K), self_terms (m,) float64) of known ids."""
        with self._io:
            slots = np.fromiter((self.row[int(i)] for i in ids), dtype=np.int64, count=len(ids))
            recs = self._read(slots)
        Zs: np.ndarray = recs["Z"].astype(dtype)
        if self.dtype == "int8":
            Zs *= recs["scale"].astype(dtype)[:, None, :]
            Zs += recs["lo"].astype(dtype)[:, None, :]  # padded points decode to lo but carry weight 0
        return Zs, recs["beta"].astype(dtype), recs["st"].astype(np.float64)

    def nbytes(self) -> int:
        """Bytes on disk (the RAM held is only the id -> slot map)."""
        return self.n * self._rec.itemsize

    def arrays(self) -> dict[str, np.ndarray]:
        """Every record as the column arrays of ``RerankStore.arrays`` (for snapshots)."""
        with self._io:
            recs = self._read(np.arange(self.n)) if self.n else np.empty(0, dtype=self._rec)
        return {name: np.ascontiguousarray(recs[name]) for name in ("ids", "Z", "lo", "scale", "beta", "st")}

    def iter_records(self, rows: int = SNAPSHOT_ROWS) -> Iterator[np.ndarray]:
        """Every record in slot order, ``rows`` at a time (one ``pread`` each; for streamed snapshots).

        The caller keeps the store unchanged meanwhile (``store.py`` holds its lock).
        """
        size = self._rec.itemsize
        for lo in range(0, self.n, rows):
            buf = np.empty(min(rows, self.n - lo), dtype=self._rec)
            view, got = buf.view(np.uint8).reshape(-1).data, 0
            while got < buf.nbytes:
                done = os.preadv(self.fd, [view[got:]], lo * size + got)
                if done <= 0:
                    raise OSError(f"re-rank store file ends at record {lo + got // size} of {self.n}")
                got += done
            yield buf

    @classmethod
    def from_records(
        cls, d: int, dtype: str, K: int, chunks: Iterable[np.ndarray], directory: str | Path = "."
    ) -> DiskRerankStore:
        """A store filled from ``record_dtype(d, K, dtype)`` chunks in slot order (a streamed snapshot)."""
        store = cls(d, dtype, directory, K=K)
        for part in chunks:
            part = np.ascontiguousarray(part).view(store._rec).reshape(-1)
            store._write(store.n, part)
            store.row.update(zip(part["ids"].tolist(), range(store.n, store.n + len(part)), strict=True))
            store.n += len(part)
        if len(store.row) != store.n:
            store.close()
            raise ValueError(f"re-rank records repeat ids: {store.n} records, {len(store.row)} distinct ids")
        return store

    @classmethod
    def from_arrays(
        cls,
        d: int,
        dtype: str,
        arrays: dict[str, np.ndarray],
        directory: str | Path = ".",
        chunk: int = 10_000,
    ) -> DiskRerankStore:
        n, K = arrays["Z"].shape[:2]
        store = cls(d, dtype, directory, K=max(K, 1))
        for start in range(0, n, chunk):  # bounded temporary memory for a large snapshot
            part = np.empty(min(chunk, n - start), dtype=store._rec)
            for name in ("ids", "Z", "lo", "scale", "beta", "st"):
                part[name] = arrays[name][start : start + len(part)]
            store._write(start, part)
        store.n = n
        store.row = {int(i): r for r, i in enumerate(arrays["ids"].tolist())}
        return store
