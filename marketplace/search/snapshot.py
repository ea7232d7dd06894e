"""Index snapshots written and read as streams, in the layout of ``specs.arrays_to_bytes``.

A 1M-spec space's re-rank store is 12-13 GiB (float16), so a snapshot is never held as
one bytes object: the header (every array's dtype, shape and offsets) is known before
any data, so ``write_arrays`` writes it first and then each array from an iterable of
chunks; ``ArrayReader`` reads the header and hands each array back whole (small ones)
or in row chunks (the store). The bytes are those ``arrays_to_bytes`` writes for the
same arrays, so ``bytes_to_arrays`` (and the ``safetensors`` library) still read them;
no pickle anywhere. Reading is sequential in offset order, which object stores stream.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from specs.exceptions import SerializationError
from specs.serialization import DTYPE_CODES, DTYPES, MAX_HEADER, array_entry

COPY_BYTES = 16 * 2**20  # what a read or a skip moves at a time


@dataclass(frozen=True)
class Column:
    """One array to write: its dtype and shape, and a callable yielding its data in order (row chunks)."""

    dtype: np.dtype
    shape: tuple[int, ...]
    chunks: Callable[[], Iterable[np.ndarray]]

    @classmethod
    def of(cls, array: np.ndarray) -> Column:
        array = np.asarray(array)
        return cls(array.dtype, tuple(array.shape), lambda: [array])

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def _code(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    code = DTYPE_CODES.get(dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype)
    if code is None:
        raise SerializationError(f"unsupported dtype {dtype}")
    return code


def write_arrays(fh: BinaryIO, header: dict[str, Any], columns: dict[str, Column]) -> int:
    """Write ``header`` and ``columns`` to the binary stream ``fh``; return the bytes written.

    Raises
    ------
    SerializationError
        Non-JSON header, a reserved name, an unsupported dtype, or a column whose chunks
        do not add up to its declared shape.
    """
    try:
        meta = json.dumps(header, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"header is not JSON-serialisable: {exc}") from exc
    entries: dict[str, Any] = {"__metadata__": {"lwm_header": meta}}
    offset = 0
    for name in sorted(columns):
        if not isinstance(name, str) or name == "__metadata__":
            raise SerializationError(f"array name {name!r} is not allowed")
        col = columns[name]
        entries[name] = {
            "dtype": _code(col.dtype),
            "shape": list(col.shape),
            "data_offsets": [offset, offset + col.nbytes],
        }
        offset += col.nbytes
    head = json.dumps(entries, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    fh.write(struct.pack("<Q", len(head)) + head)
    for name in sorted(columns):
        col, written = columns[name], 0
        little = np.dtype(DTYPES[_code(col.dtype)])
        for chunk in col.chunks():
            data = np.ascontiguousarray(chunk, dtype=little)
            if data.nbytes:
                fh.write(data.reshape(-1).view(np.uint8).data)  # no copy
            written += data.nbytes
        if written != col.nbytes:
            raise SerializationError(
                f"array {name!r}: chunks hold {written} bytes, its shape {list(col.shape)} needs {col.nbytes}"
            )
    return 8 + len(head) + offset


class ArrayReader:
    """Sequential reader of a ``write_arrays`` / ``arrays_to_bytes`` stream.

    Arrays must be asked for in the order of their data (``names`` gives it); anything
    skipped is read past, so the stream needs no ``seek``. Float data are checked to be
    finite chunk by chunk, as ``bytes_to_arrays`` does.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        raw = self._exact(8, "the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER:
            raise SerializationError(f"header length {n} exceeds {MAX_HEADER} bytes")
        try:
            entries = json.loads(self._exact(n, "the header"))
            self.header = json.loads(entries.pop("__metadata__")["lwm_header"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SerializationError(f"header field '__metadata__.lwm_header' is malformed: {exc}") from exc
        self.entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
        for name, entry in entries.items():
            self.entries[name] = array_entry(name, entry)
        expected = 0
        for name in self.names:
            begin, end = self.entries[name][2:]
            if begin != expected:
                raise SerializationError(f"array data are not contiguous at byte {begin}")
            expected = end
        self.pos = 0  # bytes of the body consumed

    @property
    def names(self) -> list[str]:
        """Array names in the order of their data."""
        return sorted(self.entries, key=lambda k: self.entries[k][2])

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[np.dtype, tuple[int, ...], int, int]:
        if name not in self.entries:
            raise SerializationError(f"array {name!r} is missing")
        return self.entries[name]

    def _exact(self, size: int, what: str) -> bytes:
        parts, got = [], 0
        while got < size:
            part = self.fh.read(min(size - got, COPY_BYTES))
            if not part:
                raise SerializationError(f"stream ends inside {what} ({got} of {size} bytes)")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def _goto(self, begin: int) -> None:
        if begin < self.pos:
            raise SerializationError(
                f"arrays must be read in data order (at byte {self.pos}, asked for {begin})"
            )
        while self.pos < begin:
            self.pos += len(self._exact(min(begin - self.pos, COPY_BYTES), "skipped data"))

    def read(self, name: str, check_finite: bool = True) -> np.ndarray:
        """The whole array ``name`` (own, writable memory)."""
        dtype, shape, _, _ = self._entry(name)
        parts = list(self.chunks(name, max(shape[0], 1) if shape else 1, check_finite))
        if not parts:
            return np.empty(shape, dtype=dtype.newbyteorder("="))
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(shape)

    def chunks(self, name: str, rows: int, check_finite: bool = True) -> Iterator[np.ndarray]:
        """Array ``name`` in chunks of up to ``rows`` rows along its first axis."""
        dtype, shape, begin, end = self._entry(name)
        self._goto(begin)
        if not shape:
            shape = (1,)
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        for lo in range(0, shape[0], max(rows, 1)):
            count = min(rows, shape[0] - lo)
            data = self._exact(count * row_bytes, f"array {name!r}")
            self.pos += len(data)
            arr = (
                np.frombuffer(data, dtype=dtype).reshape((count, *shape[1:])).astype(dtype.newbyteorder("="))
            )
            if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise SerializationError(f"array {name!r} contains NaN or infinity")
            yield arr

    def finish(self) -> None:
        """Check that the stream ends with the last array (nothing trailing, nothing missing)."""
        end = max((e[3] for e in self.entries.values()), default=0)
        self._goto(end)
        if self.fh.read(1):
            raise SerializationError("trailing bytes after the arrays")
