"""Cosine search over the cards' unit-norm text embeddings, keyed by id; serialises without pickle."""

from __future__ import annotations

import io
from typing import BinaryIO

import faiss
import numpy as np

from marketplace.search.index_format import FORMAT, VERSION, check_header
from marketplace.search.snapshot import ArrayReader, Column, write_arrays
from marketplace.search.vector_index import VectorIndex


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

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities), best first."""
        if not self.ids:
            return np.empty(0, dtype=np.int64), np.empty(0)
        q = np.asarray(query, dtype=np.float32).reshape(1, self.dim)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sim, ids = self.vectors.search(q, k, allowed)
        keep = ids[0] >= 0
        return ids[0][keep], sim[0][keep].astype(np.float64)

    def write_snapshot(self, fh: BinaryIO) -> int:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kind": "text",
            "dim": self.dim,
            "generation": self.generation,
        }
        arrays = {"faiss": self.vectors.to_array(), "ids": np.array(sorted(self.ids), dtype=np.int64)}
        return write_arrays(fh, header, {name: Column.of(a) for name, a in arrays.items()})

    @classmethod
    def read_snapshot(cls, fh: BinaryIO) -> TextIndex:
        reader = ArrayReader(fh)
        check_header(reader.header, "text")
        arrays = {name: reader.read(name) for name in reader.names}
        reader.finish()
        obj = cls(reader.header["dim"])
        obj.vectors = VectorIndex.from_bytes(
            arrays["faiss"], reader.header["dim"], faiss.METRIC_INNER_PRODUCT
        )
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
