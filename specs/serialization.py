"""Versioned, pickle-free formats: RKME as JSON, and a JSON header plus named arrays.

``arrays_to_bytes`` writes the safetensors layout by hand (so no extra
dependency, and files open with the ``safetensors`` library too):

    8 bytes    little-endian uint64 N, the length of the JSON header
    N bytes    JSON: {"__metadata__": {"lwm_header": "<caller's header as JSON>"},
                      "<name>": {"dtype": "F64", "shape": [...], "data_offsets": [begin, end]}, ...}
               padded with spaces to a multiple of 8
    rest       the arrays' little-endian bytes, back to back

Loading checks every field and raises :class:`SerializationError` naming it.
The full format description is in ``docs/specs.md``.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, TypeGuard

import numpy as np

from specs.exceptions import SerializationError
from specs.rkme import RKMESpecification

RKME_FORMAT = "lwm-rkme"
RKME_VERSION = 1

# The safetensors dtype codes; shared with the streamed search snapshots.
DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2**20  # a header larger than this is corrupt, not big


def arrays_to_bytes(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise a JSON-able header and named numeric arrays (safetensors layout).

    Parameters
    ----------
    header : dict
        JSON-serialisable metadata (no NaN/inf).
    arrays : dict of str to ndarray
        Numeric arrays (float16/32/64, int8-64, uint8-64, bool); any shape.

    Returns
    -------
    bytes

    Raises
    ------
    SerializationError
        Non-JSON header, reserved or non-string names, unsupported dtype.
    """
    try:
        meta = json.dumps(header, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"header is not JSON-serialisable: {exc}") from exc
    entries: dict[str, Any] = {"__metadata__": {"lwm_header": meta}}
    chunks, offset = [], 0
    for name in sorted(arrays):
        if not isinstance(name, str) or name == "__metadata__":
            raise SerializationError(f"array name {name!r} is not allowed")
        arr = np.asarray(arrays[name])
        code = DTYPE_CODES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
        if code is None:
            raise SerializationError(f"array {name!r} has unsupported dtype {arr.dtype}")
        raw = np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()
        entries[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(entries, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def bytes_to_arrays(
    data: bytes, *, check_finite: bool = True
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`arrays_to_bytes`.

    Parameters
    ----------
    data : bytes
    check_finite : bool
        Reject float arrays holding NaN or infinity.

    Returns
    -------
    header : dict
    arrays : dict of str to ndarray (own, writable memory)

    Raises
    ------
    SerializationError
        Truncated data, bad header JSON, unknown dtype, inconsistent shape or
        offsets, non-finite values; the message names the field or array.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 8:
        raise SerializationError("data is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n > min(MAX_HEADER, len(data) - 8):
        raise SerializationError(f"header length {n} exceeds the data ({len(data)} bytes)")
    try:
        entries = json.loads(bytes(data[8 : 8 + n]))
        header = json.loads(entries.pop("__metadata__")["lwm_header"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SerializationError(f"header field '__metadata__.lwm_header' is malformed: {exc}") from exc
    body = memoryview(data)[8 + n :]
    arrays, spans = {}, []
    for name, entry in entries.items():
        arrays[name] = _read_array(name, entry, body, check_finite)
        spans.append(tuple(entry["data_offsets"]))
    expected = 0
    for begin, end in sorted(spans):
        if begin != expected:
            raise SerializationError(f"array data are not contiguous at byte {begin}")
        expected = end
    if expected != len(body):
        raise SerializationError(f"{len(body) - expected} trailing bytes after the arrays")
    return header, arrays


def array_entry(
    name: str, entry: Any, body_size: int | None = None
) -> tuple[np.dtype, tuple[int, ...], int, int]:
    """(little-endian dtype, shape, begin, end) of one array's header entry, checked.

    Shared with the streamed search snapshots (same header layout); ``body_size`` bounds
    the offsets when the body's length is known.
    """
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise SerializationError(f"array {name!r}: field 'dtype' is missing or unsupported")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise SerializationError(f"array {name!r}: field 'shape' must be a list of ints >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise SerializationError(f"array {name!r}: field 'data_offsets' must be two ints")
    dtype = np.dtype(DTYPES[entry["dtype"]])
    begin, end = offsets
    in_body = body_size is None or end <= body_size
    if not (0 <= begin <= end and in_body) or end - begin != math.prod(shape) * dtype.itemsize:
        raise SerializationError(f"array {name!r}: 'data_offsets' {offsets} do not match shape {shape}")
    return dtype, tuple(shape), begin, end


def _read_array(name: str, entry: Any, body: memoryview, check_finite: bool) -> np.ndarray:
    dtype, shape, begin, end = array_entry(name, entry, len(body))
    arr = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise SerializationError(f"array {name!r} contains NaN or infinity")
    return arr


def _rkme_header(spec: RKMESpecification) -> dict[str, Any]:
    if not hasattr(spec, "Z_"):
        raise SerializationError("cannot serialise an unfitted RKMESpecification")
    return {
        "format": RKME_FORMAT,
        "version": RKME_VERSION,
        "d": int(spec.Z_.shape[1]),
        "K": int(spec.Z_.shape[0]),
        "gamma": float(spec.gamma_),
        "n_samples": None if spec.n_samples_ is None else int(spec.n_samples_),
        "nonnegative_beta": bool(spec.nonnegative_beta),
    }


def rkme_to_json(spec: RKMESpecification) -> str:
    """Versioned JSON of a fitted spec; floats are written exactly (shortest repr).

    Fields: ``format`` ("lwm-rkme"), ``version`` (1), ``d``, ``K``, ``gamma``,
    ``n_samples`` (int or null), ``nonnegative_beta``, ``Z`` (K lists of d
    numbers), ``beta`` (K numbers).
    """
    doc = _rkme_header(spec)
    doc["Z"] = spec.Z_.tolist()
    doc["beta"] = spec.beta_.tolist()
    return json.dumps(doc, allow_nan=False)


def rkme_from_json(text: str | bytes) -> RKMESpecification:
    """Load :func:`rkme_to_json` output, validating every field.

    Raises
    ------
    SerializationError
        Not JSON, wrong format or version, a missing or ill-typed field, shapes
        that disagree with ``K``/``d``, or NaN/inf values.
    """
    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise SerializationError(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SerializationError("top level must be a JSON object")
    _check_rkme_header(doc)
    Z = _float_field(doc, "Z", (doc["K"], doc["d"]))
    beta = _float_field(doc, "beta", (doc["K"],))
    return _build(doc, Z, beta)


def rkme_to_bytes(spec: RKMESpecification) -> bytes:
    """Binary form: the JSON header fields plus arrays ``Z`` and ``beta`` (float64)."""
    return arrays_to_bytes(_rkme_header(spec), {"Z": spec.Z_, "beta": spec.beta_})


def rkme_from_bytes(data: bytes) -> RKMESpecification:
    """Inverse of :func:`rkme_to_bytes`, with the same checks as :func:`rkme_from_json`."""
    header, arrays = bytes_to_arrays(data)
    if not isinstance(header, dict):
        raise SerializationError("header must be a JSON object")
    _check_rkme_header(header)
    for name, shape in (("Z", (header["K"], header["d"])), ("beta", (header["K"],))):
        if name not in arrays:
            raise SerializationError(f"array {name!r} is missing")
        if arrays[name].dtype != np.float64 or arrays[name].shape != shape:
            raise SerializationError(
                f"array {name!r} must be float64 of shape {shape}, got "
                f"{arrays[name].dtype} {arrays[name].shape}"
            )
    return _build(header, arrays["Z"], arrays["beta"])


def _check_rkme_header(doc: dict[str, Any]) -> None:
    if doc.get("format") != RKME_FORMAT:
        raise SerializationError(f"field 'format' must be {RKME_FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != RKME_VERSION or isinstance(doc.get("version"), bool):
        raise SerializationError(f"field 'version' must be {RKME_VERSION}, got {doc.get('version')!r}")
    for key in ("d", "K"):
        if not _is_int(doc.get(key)) or doc[key] <= 0:
            raise SerializationError(f"field {key!r} must be a positive integer, got {doc.get(key)!r}")
    gamma = doc.get("gamma")
    if not _is_number(gamma) or not math.isfinite(gamma) or gamma <= 0:
        raise SerializationError(f"field 'gamma' must be a finite number > 0, got {gamma!r}")
    n = doc.get("n_samples")
    if n is not None and (not _is_int(n) or n <= 0):
        raise SerializationError(f"field 'n_samples' must be a positive integer or null, got {n!r}")
    if not isinstance(doc.get("nonnegative_beta", False), bool):
        raise SerializationError("field 'nonnegative_beta' must be a boolean")


def _float_field(doc: dict[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = doc.get(key)
    rows = value if len(shape) == 2 and isinstance(value, list) else [value]
    if not isinstance(value, list) or not all(
        isinstance(r, list) and all(_is_number(v) for v in r) for r in rows
    ):
        raise SerializationError(f"field {key!r} must be a list of numbers of shape {shape}")
    arr = np.array(value, dtype=np.float64)
    if arr.shape != shape:
        raise SerializationError(f"field {key!r} has shape {arr.shape}, expected {shape} from 'K' and 'd'")
    if not np.isfinite(arr).all():
        raise SerializationError(f"field {key!r} contains NaN or infinity")
    return arr


def _build(doc: dict[str, Any], Z: np.ndarray, beta: np.ndarray) -> RKMESpecification:
    spec = RKMESpecification.from_arrays(Z, beta, float(doc["gamma"]), n_samples=doc.get("n_samples"))
    spec.nonnegative_beta = bool(doc.get("nonnegative_beta", False))
    return spec


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
