"""FAISS adapter for one feature space: arrays + ids in, ids + scores out (no ORM).

Two stages. The first is FAISS over the RFF sketches (``||phi_1 - phi_2||^2 ~ MMD^2``):
an exact flat scan below ``FLAT_MAX`` entries, ``IVF<nlist>,SQ8`` above (measured in
``docs/search.md``). The second re-ranks the top ``k'`` by exact MMD^2 from a compact
store of the RKMEs: Z in float16 (or int8 with one scale per point), beta in float32,
and each spec's self-term ``beta' K_ZZ beta`` precomputed from the exact arrays. Given a
``store_dir``, the store moves to local disk (``rkme_store.DiskRerankStore``, parallel
``pread``) once the space holds ``disk_min`` specs; results are the same either way.

Ids are int64 (the market uses learnware version ids). ``TextIndex`` holds the
unit-norm card embeddings for cosine search. Both serialise to bytes without pickle.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from marketplace.search.rkme_store import DiskRerankStore, record_dtype
from marketplace.search.snapshot import ArrayReader, Column, write_arrays
from marketplace.search.vector_index import VectorIndex
from specs import self_term
from specs.exceptions import SerializationError

logger = logging.getLogger(__name__)

FORMAT = "lwm-search-index"
VERSION = 2  # 2: a space's store as one array of fixed-size records (streamed); 1: one array per column
SNAPSHOT_ROWS = 4096  # store records per streamed chunk (~56 MB at K = 100, d = 64, float16)


class RerankStore:
    """Compact RKMEs (padded to the largest K seen) keyed by id, with exact self-terms.

    ``float16`` keeps Z to ~3 significant digits. ``int8`` keeps Z as uint8 codes on a
    per-spec, per-column grid ``lo + code * step`` (256 levels over the column's range,
    half the memory of float16); a per-point scale lost the top-1 on 5 % of test queries.
    """

    on_disk = False

    def __init__(self, d: int, dtype: str = "float16", capacity: int = 64) -> None:
        if dtype not in ("float16", "int8"):
            raise ValueError(f"dtype must be 'float16' or 'int8', got {dtype!r}")
        self.d, self.dtype, self.K, self.n = d, dtype, 1, 0
        self.row: dict[int, int] = {}
        self._alloc(capacity, 1)

    def _alloc(self, capacity: int, K: int) -> None:
        old = (self.ids[: self.n], self.Z[: self.n], self.lo[: self.n], self.scale[: self.n], self.beta[: self.n], self.st[: self.n]) if self.n else None
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.Z = np.zeros((capacity, K, self.d), dtype=np.uint8 if self.dtype == "int8" else np.float16)
        self.lo = np.zeros((capacity, self.d), dtype=np.float32)
        self.scale = np.ones((capacity, self.d), dtype=np.float32)
        self.beta = np.zeros((capacity, K), dtype=np.float32)
        self.st = np.zeros(capacity, dtype=np.float64)
        if old is not None:
            Kold = old[1].shape[1]
            self.ids[: self.n], self.lo[: self.n], self.scale[: self.n], self.st[: self.n] = old[0], old[2], old[3], old[5]
            self.Z[: self.n, :Kold], self.beta[: self.n, :Kold] = old[1], old[4]
        self.K = K

    def __len__(self) -> int:
        return self.n

    def put(self, ids: np.ndarray, Zs: list[np.ndarray], betas: list[np.ndarray], self_terms: np.ndarray) -> None:
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
        Zs = self.Z[rows].astype(dtype)
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
            raise ValueError(f"snapshot re-rank records: {store.n} read, {len(store.row)} distinct ids, {n} declared")
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


def _cross_terms_f32(Z: np.ndarray, beta: np.ndarray, Zs: np.ndarray, betas: np.ndarray, gamma: float) -> np.ndarray:
    """``beta' K(Z, Zs[i]) betas[i]`` with the kernel block in float32, reduced in float64.

    Half the time of the float64 kernel (GEMM and exp), the latency's largest part; the
    error (~1e-6 relative) is far below the float16 store's, see tests/marketplace/search.
    """
    m, Kc, d = Zs.shape
    A = np.asarray(Z, dtype=np.float32)
    B = Zs.reshape(-1, d)
    sq = A @ B.T
    sq *= -2.0
    sq += np.einsum("ij,ij->i", A, A)[:, None]
    sq += np.einsum("ij,ij->i", B, B)[None, :]
    np.maximum(sq, 0.0, out=sq)
    sq *= np.float32(-gamma)
    np.exp(sq, out=sq)
    v = np.asarray(beta, dtype=np.float32) @ sq
    return np.einsum("mk,mk->m", v.reshape(m, Kc).astype(np.float64), betas.astype(np.float64))


@dataclass(frozen=True)
class Hits:
    """Ranked candidates: ids, exact MMD^2 and the sketch stage's squared distance."""

    ids: np.ndarray
    mmd2: np.ndarray
    sketch_distance: np.ndarray


class SpaceIndex:
    """Two-stage search over one feature space's specs.

    Parameters
    ----------
    d : int
        Dimension of the space; ``D`` the sketch dimension; ``gamma`` its kernel bandwidth.
    store_dtype : {"float16", "int8"}
    store_dir : str or Path, optional
        Local directory for the on-disk re-rank store; None keeps the store in RAM.
    disk_min : int
        With ``store_dir``, move the store to disk once it holds this many specs (0: at once).
    """

    def __init__(self, d: int, D: int, gamma: float, store_dtype: str = "float16",
                 store_dir: str | Path | None = None, disk_min: int = 0) -> None:
        self.d, self.D, self.gamma = d, D, gamma
        self.store_dir, self.disk_min = store_dir, disk_min
        self.sketches = VectorIndex(D)
        self.store: RerankStore | DiskRerankStore = RerankStore(d, store_dtype)
        self.generation = 0
        self._maybe_to_disk()

    def _maybe_to_disk(self) -> None:
        if self.store_dir is None or self.store.on_disk or len(self.store) < self.disk_min:
            return
        ram = self.store
        self.store = DiskRerankStore.from_arrays(self.d, ram.dtype, ram.arrays(), self.store_dir)

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, ident: int) -> bool:
        return int(ident) in self.store.row

    def add(self, ids: np.ndarray, sketches: np.ndarray, Zs: list[np.ndarray], betas: list[np.ndarray], self_terms: np.ndarray) -> None:
        """Insert specs; ids already present are replaced (idempotent)."""
        ids = np.asarray(ids, dtype=np.int64)
        present = np.array([i for i in ids.tolist() if i in self.store.row], dtype=np.int64)
        if present.size:
            self.sketches.remove(present)
        self.sketches.add(ids, sketches)
        self.store.put(ids, Zs, betas, self_terms)
        self._maybe_to_disk()

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray([i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self.store.row], dtype=np.int64)
        if ids.size:
            self.sketches.remove(ids)
            self.store.remove(ids)

    def candidates(self, sketch: np.ndarray, k_prime: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """First stage: the ``k_prime`` nearest sketches (ids, squared distances)."""
        if len(self) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        dist, ids = self.sketches.search(sketch, k_prime, allowed)
        keep = ids[0] >= 0
        return ids[0][keep], dist[0][keep].astype(np.float64)

    def rerank(self, Z: np.ndarray, beta: np.ndarray, ids: np.ndarray, sketch_distance: np.ndarray) -> Hits:
        """Second stage: exact MMD^2 of the query to each candidate, ascending."""
        if ids.size == 0:
            return Hits(ids, np.empty(0), np.empty(0))
        Zs, betas, st = self.store.gather(ids, np.float32)
        user = float(self_term(Z, beta, self.gamma))
        mmd2 = np.maximum(user - 2.0 * _cross_terms_f32(Z, beta, Zs, betas, self.gamma) + st, 0.0)
        order = np.argsort(mmd2, kind="stable")
        return Hits(ids[order], mmd2[order], sketch_distance[order])

    def write_snapshot(self, fh: BinaryIO) -> int:
        """Stream this index to ``fh`` (returns the bytes written); memory beyond the index's own
        is one chunk of ``SNAPSHOT_ROWS`` store records plus the serialised FAISS index.

        Layout (``snapshot.write_arrays``, safetensors): header {format, version 2, kind "space",
        d, D, gamma, dtype, generation, K, n}; arrays ``faiss`` (uint8) and ``store.records``
        (uint8, (n, record size)): ``rkme_store.record_dtype(d, K, dtype)`` records in row order.
        """
        header = {"format": FORMAT, "version": VERSION, "kind": "space", "d": self.d, "D": self.D,
                  "gamma": self.gamma, "dtype": self.store.dtype, "generation": self.generation,
                  "K": int(self.store.K), "n": len(self.store)}
        size = record_dtype(self.d, self.store.K, self.store.dtype).itemsize
        records = Column(np.dtype(np.uint8), (len(self.store), size),
                         lambda: (r.view(np.uint8).reshape(len(r), size) for r in self.store.iter_records(SNAPSHOT_ROWS)))
        return write_arrays(fh, header, {"faiss": Column.of(self.sketches.to_array()), "store.records": records})

    @classmethod
    def read_snapshot(cls, fh: BinaryIO, store_dir: str | Path | None = None, disk_min: int = 0) -> SpaceIndex:
        """Load a snapshot stream (v2, or v1's column arrays) into a RAM store, or straight onto
        disk when ``store_dir`` is given and it holds at least ``disk_min`` specs."""
        reader = ArrayReader(fh)
        header = reader.header
        version = _check_header(header, "space")
        obj = cls(header["d"], header["D"], header["gamma"], header["dtype"])
        obj.store_dir, obj.disk_min = store_dir, disk_min
        faiss_bytes = reader.read("faiss")
        if version == 1:
            columns = {name[6:]: reader.read(name) for name in reader.names if name.startswith("store.")}
            n = len(columns["ids"])
            to_disk = store_dir is not None and n >= disk_min
            obj.store = (DiskRerankStore.from_arrays(header["d"], header["dtype"], columns, store_dir) if to_disk
                         else RerankStore.from_arrays(header["d"], header["dtype"], columns))
        else:
            d, dtype, K, n = header["d"], header["dtype"], int(header["K"]), int(header["n"])
            size = record_dtype(d, K, dtype).itemsize
            if reader.shape("store.records") != (n, size):
                raise SerializationError(f"array 'store.records' has shape {list(reader.shape('store.records'))}, "
                                         f"expected [{n}, {size}] from the header's n, K, d and dtype")
            chunks = reader.chunks("store.records", SNAPSHOT_ROWS)
            if store_dir is not None and n >= disk_min:
                obj.store = DiskRerankStore.from_records(d, dtype, K, chunks, store_dir)
            else:
                obj.store = RerankStore.from_records(d, dtype, K, n, chunks)
        reader.finish()
        obj.sketches = VectorIndex.from_bytes(faiss_bytes, header["D"], faiss.METRIC_L2)
        if obj.sketches.ntotal != len(obj.store):
            raise SerializationError(f"snapshot holds {obj.sketches.ntotal} sketches but {len(obj.store)} re-rank records")
        obj.generation = int(header["generation"])
        return obj

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.write_snapshot(buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, store_dir: str | Path | None = None, disk_min: int = 0) -> SpaceIndex:
        """Load a snapshot (the same bytes whichever store wrote it) into a RAM or disk store."""
        return cls.read_snapshot(io.BytesIO(data), store_dir, disk_min)


class TextIndex:
    """Card embeddings (unit norm, cosine = inner product) keyed by id."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.vectors = VectorIndex(dim, faiss.METRIC_INNER_PRODUCT)
        self.ids: set[int] = set()
        self.generation = 0

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, embeddings: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        emb = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.remove(ids)
        self.vectors.add(ids, emb)
        self.ids.update(ids.tolist())

    def remove(self, ids: np.ndarray) -> None:
        present = [i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self.ids]
        if present:
            self.vectors.remove(np.array(present, dtype=np.int64))
            self.ids.difference_update(present)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities), best first."""
        if not self.ids:
            return np.empty(0, dtype=np.int64), np.empty(0)
        q = np.asarray(query, dtype=np.float32).reshape(1, self.dim)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sim, ids = self.vectors.search(q, k, allowed)
        keep = ids[0] >= 0
        return ids[0][keep], sim[0][keep].astype(np.float64)

    def write_snapshot(self, fh: BinaryIO) -> int:
        header = {"format": FORMAT, "version": VERSION, "kind": "text", "dim": self.dim, "generation": self.generation}
        arrays = {"faiss": self.vectors.to_array(), "ids": np.array(sorted(self.ids), dtype=np.int64)}
        return write_arrays(fh, header, {name: Column.of(a) for name, a in arrays.items()})

    @classmethod
    def read_snapshot(cls, fh: BinaryIO) -> TextIndex:
        reader = ArrayReader(fh)
        _check_header(reader.header, "text")
        arrays = {name: reader.read(name) for name in reader.names}
        reader.finish()
        obj = cls(reader.header["dim"])
        obj.vectors = VectorIndex.from_bytes(arrays["faiss"], reader.header["dim"], faiss.METRIC_INNER_PRODUCT)
        obj.ids = set(arrays["ids"].tolist())
        obj.generation = int(reader.header["generation"])
        return obj

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.write_snapshot(buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TextIndex:
        return cls.read_snapshot(io.BytesIO(data))


def _check_header(header: dict, kind: str) -> int:
    """The snapshot's format version (1 or 2: both are read); raises on anything else."""
    if header.get("format") != FORMAT or header.get("version") not in (1, VERSION) or header.get("kind") != kind:
        raise SerializationError(f"snapshot header is not a {FORMAT} v1/v{VERSION} {kind} index: {header!r}")
    return int(header["version"])
