"""FAISS adapter for one feature space: arrays + ids in, ids + scores out (no ORM).

Two stages. The first is FAISS over the RFF sketches (``||phi_1 - phi_2||^2 ~ MMD^2``):
an exact flat scan below ``FLAT_MAX`` entries, ``IVF<nlist>,SQ8`` above (measured in
``docs/search.md``). The second re-ranks the top ``k'`` by exact MMD^2 from a compact
store of the RKMEs: Z in float16 (or int8 with one scale per point), beta in float32,
and each spec's self-term ``beta' K_ZZ beta`` precomputed from the exact arrays. Given a
``store_dir``, the store moves to local disk (``rkme_store.DiskRerankStore``, parallel
``pread``) once the space holds ``disk_min`` specs; results are the same either way.

Ids are int64 (the market uses learnware version ids). The RAM store is ``ram_store.RerankStore``;
the card embeddings' cosine index is ``text_index.TextIndex``. Both indexes serialise to bytes
without pickle (header: ``index_format``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from marketplace.search.index_format import FORMAT, SNAPSHOT_ROWS, VERSION, check_header
from marketplace.search.ram_store import RerankStore
from marketplace.search.rkme_store import DiskRerankStore, record_dtype
from marketplace.search.snapshot import ArrayReader, Column, write_arrays
from marketplace.search.vector_index import VectorIndex
from specs import self_term
from specs.exceptions import SerializationError

logger = logging.getLogger(__name__)


def _cross_terms_f32(
    Z: np.ndarray, beta: np.ndarray, Zs: np.ndarray, betas: np.ndarray, gamma: float
) -> np.ndarray:
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

    def __init__(
        self,
        d: int,
        D: int,
        gamma: float,
        store_dtype: str = "float16",
        store_dir: str | Path | None = None,
        disk_min: int = 0,
    ) -> None:
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

    def add(
        self,
        ids: np.ndarray,
        sketches: np.ndarray,
        Zs: list[np.ndarray],
        betas: list[np.ndarray],
        self_terms: np.ndarray,
    ) -> None:
        """Insert specs; ids already present are replaced (idempotent)."""
        ids = np.asarray(ids, dtype=np.int64)
        present = np.array([i for i in ids.tolist() if i in self.store.row], dtype=np.int64)
        if present.size:
            self.sketches.remove(present)
        self.sketches.add(ids, sketches)
        self.store.put(ids, Zs, betas, self_terms)
        self._maybe_to_disk()

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(
            [i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self.store.row], dtype=np.int64
        )
        if ids.size:
            self.sketches.remove(ids)
            self.store.remove(ids)

    def candidates(
        self, sketch: np.ndarray, k_prime: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
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
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kind": "space",
            "d": self.d,
            "D": self.D,
            "gamma": self.gamma,
            "dtype": self.store.dtype,
            "generation": self.generation,
            "K": int(self.store.K),
            "n": len(self.store),
        }
        size = record_dtype(self.d, self.store.K, self.store.dtype).itemsize
        records = Column(
            np.dtype(np.uint8),
            (len(self.store), size),
            lambda: (r.view(np.uint8).reshape(len(r), size) for r in self.store.iter_records(SNAPSHOT_ROWS)),
        )
        return write_arrays(
            fh, header, {"faiss": Column.of(self.sketches.to_array()), "store.records": records}
        )

    @classmethod
    def read_snapshot(
        cls, fh: BinaryIO, store_dir: str | Path | None = None, disk_min: int = 0
    ) -> SpaceIndex:
        """Load a snapshot stream (v2, or v1's column arrays) into a RAM store, or straight onto
        disk when ``store_dir`` is given and it holds at least ``disk_min`` specs."""
        reader = ArrayReader(fh)
        header = reader.header
        version = check_header(header, "space")
        obj = cls(header["d"], header["D"], header["gamma"], header["dtype"])
        obj.store_dir, obj.disk_min = store_dir, disk_min
        faiss_bytes = reader.read("faiss")
        if version == 1:
            columns = {name[6:]: reader.read(name) for name in reader.names if name.startswith("store.")}
            n = len(columns["ids"])
            to_disk = store_dir is not None and n >= disk_min
            obj.store = (
                DiskRerankStore.from_arrays(header["d"], header["dtype"], columns, store_dir)
                if to_disk and store_dir is not None
                else RerankStore.from_arrays(header["d"], header["dtype"], columns)
            )
        else:
            d, dtype, K, n = header["d"], header["dtype"], int(header["K"]), int(header["n"])
            size = record_dtype(d, K, dtype).itemsize
            if reader.shape("store.records") != (n, size):
                raise SerializationError(
                    f"array 'store.records' has shape {list(reader.shape('store.records'))}, "
                    f"expected [{n}, {size}] from the header's n, K, d and dtype"
                )
            chunks = reader.chunks("store.records", SNAPSHOT_ROWS)
            if store_dir is not None and n >= disk_min:
                obj.store = DiskRerankStore.from_records(d, dtype, K, chunks, store_dir)
            else:
                obj.store = RerankStore.from_records(d, dtype, K, n, chunks)
        reader.finish()
        obj.sketches = VectorIndex.from_bytes(faiss_bytes, header["D"], faiss.METRIC_L2)
        if obj.sketches.ntotal != len(obj.store):
            raise SerializationError(
                f"snapshot holds {obj.sketches.ntotal} sketches but {len(obj.store)} re-rank records"
            )
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
