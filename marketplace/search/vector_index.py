"""The first stage of a space's search: FAISS over sketch vectors, flat or IVF-SQ8 by size.

A flat scan below ``FLAT_MAX`` entries; above, ``IVF<nlist>,SQ8`` whose list count grows
with the space (retrained in a background thread when the count its size asks for reaches
``IVF_REGROW`` times the trained one; adds and removes made meanwhile are replayed before
the swap). Used by ``index.SpaceIndex`` (sketches) and ``text_index.TextIndex`` (card embeddings).
"""

from __future__ import annotations

import logging
import os
import threading

import faiss
import numpy as np

logger = logging.getLogger(__name__)

FLAT_MAX = 50_000  # below this a flat scan of D=512 sketches takes <= ~10 ms on 2 cores
IVF_REGROW = 2.0  # retrain the IVF once the nlist its size asks for reaches 2x the trained one
IVF_TRAIN_PER_LIST = 64  # k-means sample per list (FAISS wants >= 39); 256 took ~4x longer to train
# nprobe = 128 * (nlist / 903) ** 0.25 (docs/search.md, "IVF regrowth"): at 100k specs recall@10 reached
# 0.98 at nprobe ~128 with 903 lists and ~160 with 2,564 (needed probes grow ~nlist^0.2, not with
# nlist: a fixed fraction would scan 14 % of 1M codes); at 1M, 3,613 lists, 64-384 probes all gave 0.99.
IVF_NPROBE_BASE, IVF_NLIST_BASE, IVF_NPROBE_EXPONENT = 128, 903, 0.25
IVF_NPROBE_MIN = 32  # never fewer (small spaces with few lists probe them all anyway)
REGROW_IN_BACKGROUND = True  # False: retrain inside add (tests, benchmarks that time the build)


def ivf_nlist(n: int) -> int:
    """Lists for ``n`` vectors: ~4 sqrt(n), with >= 39 training points per list."""
    return max(1, int(min(4 * np.sqrt(n), n // 39)))


def ivf_nprobe(nlist: int) -> int:
    """Lists probed per query for an IVF of ``nlist`` lists (the rule measured in docs/search.md):
    903 -> 128, 1,806 -> 153, 3,613 -> 182, 7,226 -> 216; all of them below ``IVF_NPROBE_MIN``."""
    wanted = np.ceil(IVF_NPROBE_BASE * (max(nlist, 1) / IVF_NLIST_BASE) ** IVF_NPROBE_EXPONENT)
    return int(min(nlist, max(IVF_NPROBE_MIN, wanted)))


def _empty_flat(dim: int, metric: int = faiss.METRIC_L2) -> faiss.Index:
    inner = faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(inner)


def _ivf(vectors: np.ndarray, ids: np.ndarray, metric: int = faiss.METRIC_L2) -> faiss.Index:
    """IVF with 8-bit scalar quantisation, trained on (a sample of) the vectors."""
    n, dim = vectors.shape
    nlist = ivf_nlist(n)
    index = faiss.index_factory(dim, f"IVF{nlist},SQ8", metric)
    rng = np.random.default_rng(0)
    size = IVF_TRAIN_PER_LIST * nlist
    train = vectors if n <= size else vectors[np.sort(rng.choice(n, size, replace=False))]
    index.train(np.ascontiguousarray(train))
    index.add_with_ids(vectors, ids)
    faiss.extract_index_ivf(index).nprobe = ivf_nprobe(nlist)
    return index


def _contents(index: faiss.Index, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, dim) float32, ids (n,)) held by a flat or IVF index; IVF codes are decoded."""
    if isinstance(index, faiss.IndexIDMap2):
        flat = faiss.downcast_index(index.index)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * dim).reshape(-1, dim).copy()
        return vectors, faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    prefix = ivf.coarse_code_size()  # sa_decode wants each code led by its list number
    codes, ids = [], []
    for lst in range(ivf.nlist):
        size = ivf.invlists.list_size(lst)
        if not size:
            continue
        ids.append(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size).copy())
        raw = faiss.rev_swig_ptr(ivf.invlists.get_codes(lst), size * ivf.code_size).reshape(size, -1)
        head = np.frombuffer(int(lst).to_bytes(prefix, "little"), dtype=np.uint8)
        codes.append(np.hstack([np.broadcast_to(head, (size, prefix)), raw]))
    if not ids:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    return index.sa_decode(np.vstack(codes)), np.concatenate(ids).astype(np.int64)


def _nlist(index: faiss.Index) -> int:
    return 0 if isinstance(index, faiss.IndexIDMap2) else int(faiss.extract_index_ivf(index).nlist)


class _Regrow:
    """A retrain in flight: the changes made to the live index meanwhile, replayed on the new one."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child inherits this object but not the thread
        self.journal: list[tuple[str, np.ndarray, np.ndarray | None]] = []
        self.done = threading.Event()


class VectorIndex:
    """FAISS vectors keyed by int64 id: flat until FLAT_MAX, then IVF,SQ8 that regrows with N.

    The IVF is retrained with ``ivf_nlist(N)`` lists whenever that reaches ``IVF_REGROW``
    times the trained count (50k -> ~900 lists, 200k -> ~1800, 800k -> ~3600), from the
    vectors it holds (decoded from SQ8; the raw sketches are not kept). The retrain runs in
    a thread on a copy: searches and changes keep using the live index, changes are also
    journalled, and the new index replays the journal and replaces the live one under the
    lock, so the only wait is that replay.
    """

    def __init__(self, dim: int, metric: int = faiss.METRIC_L2) -> None:
        self.dim, self.metric = dim, metric
        self.index: faiss.Index = _empty_flat(dim, metric)
        self._lock = threading.RLock()  # FAISS adds/removes vs. searches vs. the swap
        self._regrow: _Regrow | None = None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int:
        """Lists of the live IVF (0 while flat)."""
        return _nlist(self.index)

    def is_flat(self) -> bool:
        return isinstance(self.index, faiss.IndexIDMap2)

    def wants_regrow(self) -> bool:
        n = self.ntotal
        if self.is_flat():
            return n > FLAT_MAX
        return ivf_nlist(n) >= IVF_REGROW * self.nlist

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self._lock:
            self.index.add_with_ids(vectors, ids)
            self._journal("add", ids, vectors)
        self._maybe_regrow()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self._lock:
            removed = int(self.index.remove_ids(ids))
            self._journal("remove", ids, None)
        return removed

    def _journal(self, op: str, ids: np.ndarray, vectors: np.ndarray | None) -> None:
        if self._regrow is not None and self._regrow.pid == os.getpid():
            self._regrow.journal.append((op, ids, vectors))

    def _maybe_regrow(self) -> None:
        with self._lock:
            if self._regrow is not None and self._regrow.pid != os.getpid():
                self._regrow = None  # forked mid-retrain: that thread lives only in the parent
            if self._regrow is not None or not self.wants_regrow():
                return
            vectors, ids = _contents(self.index, self.dim)
            self._regrow = job = _Regrow()
        if REGROW_IN_BACKGROUND:
            threading.Thread(
                target=self._retrain, args=(job, vectors, ids), name="ivf-regrow", daemon=True
            ).start()
        else:
            self._retrain(job, vectors, ids)

    def _retrain(self, job: _Regrow, vectors: np.ndarray, ids: np.ndarray) -> None:
        try:
            new = _ivf(vectors, ids, self.metric)
            del vectors
            with self._lock:
                for op, op_ids, op_vectors in job.journal:
                    if op == "add":
                        new.add_with_ids(op_vectors, op_ids)
                    else:
                        new.remove_ids(op_ids)
                self.index = new
        except Exception:  # keep serving from the old index; the next add tries again
            logger.exception("IVF retrain of %d vectors failed", len(ids))
        finally:
            with self._lock:
                if self._regrow is job:
                    self._regrow = None
            job.done.set()

    def wait_regrow(self, timeout: float | None = None) -> bool:
        """Block until no retrain is in flight (True) or ``timeout`` passes (False)."""
        job = self._regrow
        return job is None or job.done.wait(timeout)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            index = self.index
            k = max(1, min(k, int(index.ntotal)))
            params = None
            if allowed is not None:
                selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
                if isinstance(index, faiss.IndexIDMap2):
                    params = faiss.SearchParameters(sel=selector)
                else:
                    params = faiss.SearchParametersIVF(
                        sel=selector, nprobe=faiss.extract_index_ivf(index).nprobe
                    )
            dist, ids = index.search(queries, k, params=params)
        return dist, ids

    def to_bytes(self) -> bytes:
        return self.to_array().tobytes()

    def to_array(self) -> np.ndarray:
        """The serialised FAISS index as a uint8 array (what snapshots store)."""
        with self._lock:
            return faiss.serialize_index(self.index)

    @classmethod
    def from_bytes(cls, data: bytes | np.ndarray, dim: int, metric: int) -> VectorIndex:
        obj = cls(dim, metric)
        raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        obj.index = faiss.deserialize_index(np.ascontiguousarray(raw, dtype=np.uint8))
        if not obj.is_flat():
            faiss.extract_index_ivf(obj.index).nprobe = ivf_nprobe(obj.nlist)
        obj._maybe_regrow()  # a snapshot written before the space grew past its lists
        return obj
