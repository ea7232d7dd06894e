"""Bounds of a safetensors file, checked from its header alone before anything is allocated.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each
tensor name to ``{dtype, shape, data_offsets}``, then the raw data. The safetensors
library trusts the header's size (up to 100 MB of JSON) and builds every tensor it lists:
an upload of a few MB declaring 400,000 tensors cost seconds and hundreds of MB in the web
process. Here the length, the JSON size, the tensor count, each dtype and shape, and each
byte range (inside the data, matching dtype x shape, no two overlapping) are checked first;
only a file that passes is handed to the library. Standard library only.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from specs.packaging.errors import InvalidPackageError

# Bytes per element of the floating dtypes a LoRA adapter's weights may use.
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
# A base model's checkpoint also carries integer buffers (BERT's position_ids/token_type_ids are
# int64); adapters keep the float-only rule.
BASE_MODEL_DTYPES = {**FLOAT_DTYPES, "I64": 8}


@dataclass(frozen=True)
class SafetensorsLimits:
    """Caps of one file: a MiniLM LoRA has 24 tensors and a 3 KB header, a 12-layer BERT ~200 tensors.

    ``dtypes`` maps each accepted dtype to its bytes per element (per kind: :data:`FLOAT_DTYPES`
    for adapters, :data:`BASE_MODEL_DTYPES` for base models); ``code`` is the refusal's code.
    """

    max_header_bytes: int = 2**20
    max_tensors: int = 4096
    max_rank: int = 4
    max_name_chars: int = 512
    dtypes: Mapping[str, int] = field(default_factory=lambda: dict(FLOAT_DTYPES))
    code: str = "upload:user:adapter-header"
    what: str = "adapter weights"


BASE_MODEL_LIMITS = SafetensorsLimits(
    dtypes=BASE_MODEL_DTYPES, code="upload:user:base-model-header", what="base-model weights"
)


def _refuse(name: str, message: str, limits: SafetensorsLimits) -> InvalidPackageError:
    return InvalidPackageError(f"{name}: {message}", code=limits.code, details={"file": name})


def _entry(key: str, value: Any, data_len: int, limits: SafetensorsLimits, name: str) -> tuple[int, int]:
    sizes = limits.dtypes
    if len(key) > limits.max_name_chars:
        raise _refuse(
            name, f"tensor name {key[:40]!r}... is longer than {limits.max_name_chars} characters", limits
        )
    if not isinstance(value, dict):
        raise _refuse(name, f"tensor {key!r} is not described by a mapping", limits)
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in sizes:  # a list would not even hash
        raise _refuse(
            name, f"tensor {key!r} has dtype {dtype!r}; {limits.what} are {', '.join(sizes)}", limits
        )
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_rank
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= data_len for s in shape)
    ):
        raise _refuse(
            name,
            f"tensor {key!r} has shape {str(shape)[:80]}; expected at most {limits.max_rank} sizes, each "
            "within the data",
            limits,
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise _refuse(
            name,
            f"tensor {key!r} has data_offsets {str(offsets)[:80]} outside the {data_len} bytes of data",
            limits,
        )
    if offsets[1] - offsets[0] != math.prod(shape) * sizes[dtype]:
        raise _refuse(
            name,
            f"tensor {key!r}: data_offsets span {offsets[1] - offsets[0]} bytes, but {dtype} x {shape} needs "
            f"{math.prod(shape) * sizes[dtype]}",
            limits,
        )
    return offsets[0], offsets[1]


def check_safetensors_header(
    data: bytes, name: str = "adapter_model.safetensors", limits: SafetensorsLimits | None = None
) -> int:
    """Check ``data``'s header against ``limits``; return the number of tensors.

    Raises
    ------
    InvalidPackageError
        ``upload:user:adapter-header`` naming what is out of bounds.
    """
    limits = limits or SafetensorsLimits()
    if len(data) < 8:
        raise _refuse(name, "is shorter than the 8-byte header length", limits)
    (size,) = struct.unpack("<Q", data[:8])
    if size > limits.max_header_bytes:
        raise _refuse(name, f"declares a {size}-byte header (limit {limits.max_header_bytes})", limits)
    if 8 + size > len(data):
        raise _refuse(name, f"declares a {size}-byte header but the file has {len(data)} bytes", limits)
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _refuse(name, "the header is not UTF-8 JSON", limits) from None
    if not isinstance(header, dict):
        raise _refuse(name, "the header is not a JSON object", limits)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _refuse(name, "__metadata__ must map names to strings", limits)
    if len(header) > limits.max_tensors:
        raise _refuse(name, f"declares {len(header)} tensors (limit {limits.max_tensors})", limits)
    data_len = len(data) - 8 - size
    spans = sorted(_entry(key, value, data_len, limits, name) for key, value in header.items())
    for (_, end), (begin, _) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise _refuse(name, "two tensors' data_offsets overlap", limits)
    return len(header)
