"""Read a package's data sample into arrays (never with pickle) and map it into its feature space."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.learnwares.encoding import encode_texts, image_encoder
from marketplace.learnwares.models import FeatureSpace
from marketplace.learnwares.services.adapter_bases import is_base_space
from specs import TableStandardizer
from specs.columns import align, column_names
from specs.tables import TableFileError, read_csv, read_npz
from specs.text_input import utf8_problem

MAX_SAMPLE_ROWS = 200_000


def _bad(code: str, message: str, file: str) -> ValidationFailed:
    return ValidationFailed(message, code=f"publish:user:{code}", details={"file": file})


def _table_csv(raw: bytes, columns: list[Any]) -> np.ndarray:
    """The sample's rows in the manifest's column order; its header names the same columns in any order."""
    names = column_names(columns)
    try:
        table = read_csv(raw)
    except TableFileError as exc:
        code = (
            "sample-values"
            if exc.reason == "not-numeric"
            else "sample-columns"
            if exc.reason == "empty-data"
            else "sample-format"
        )
        raise _bad(code, f"sample.csv: {exc}", "sample.csv") from None
    header = table.columns or []
    if sorted(header) != sorted(names) or len(set(header)) != len(header):
        raise _bad(
            "sample-columns",
            f"sample.csv: the header must name the manifest's input.columns {names} (any order)",
            "sample.csv",
        )
    return align(header, names).apply(table.X)


def _npz(raw: bytes, key: str) -> np.ndarray:
    try:
        arrays = read_npz(raw)
    except TableFileError as exc:
        raise _bad("sample-format", f"sample.npz: {exc}", "sample.npz") from None
    if key not in arrays:
        raise _bad("sample-format", f"sample.npz: array {key!r} is missing", "sample.npz")
    arr = arrays[key]
    if arr.dtype.kind not in "biuf":
        raise _bad("sample-format", f"sample.npz: {key!r} must be numeric, got {arr.dtype}", "sample.npz")
    return arr.astype(np.float64)


def _images(files: dict[str, bytes], shape: list[int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    out = []
    for name in sorted(files):
        try:
            img = Image.open(io.BytesIO(files[name])).convert("L" if c == 1 else "RGB").resize((w, h))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise _bad("sample-format", f"{name} is not a readable PNG/JPEG image: {exc}", name) from None
        arr = np.asarray(img, dtype=np.float32) / 255.0
        out.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
    return np.stack(out)


def _texts(raw: bytes) -> list[str]:
    texts = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise _bad("sample-format", f"sample.jsonl line {number} is not JSON", "sample.jsonl") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise _bad(
                "sample-format", f"sample.jsonl line {number}: field 'text' must be a string", "sample.jsonl"
            )
        if problem := utf8_problem(item["text"]):  # a JSON escape; hashing and the tokenizer fail on it
            raise _bad("sample-format", f"sample.jsonl line {number} holds {problem}", "sample.jsonl")
        texts.append(item["text"])
    return texts


def sample_raw(*, manifest: dict[str, Any], kind: str, files: dict[str, bytes]) -> Any:
    """The sample as the model sees it: (n, d) table, (n, C, H, W) images or a list of texts.

    Raises
    ------
    ValidationFailed
        ``publish:user:sample-*`` naming the file: wrong columns/shape, NaN/inf, empty, too large.
    """
    name = next(iter(sorted(files)))
    if kind == "csv":
        data: Any = _table_csv(files[name], manifest["input"]["columns"])
    elif kind == "npz":
        data = _npz(files[name], "X" if manifest["modality"] == Modality.TABLE else "images")
        if manifest["modality"] == Modality.IMAGE and data.max(initial=0) > 1.0:
            data = data / 255.0  # uint8 images
    elif kind == "images":
        data = _images(files, manifest["input"]["shape"])
    else:
        data = _texts(files[name])
    if len(data) == 0:
        raise _bad("sample-empty", f"{name}: the sample has no rows", name)
    if len(data) > MAX_SAMPLE_ROWS:
        raise _bad("sample-too-large", f"{name}: at most {MAX_SAMPLE_ROWS} rows", name)
    if not isinstance(data, list):
        expected = (
            (len(manifest["input"]["columns"]),)
            if manifest["modality"] == Modality.TABLE
            else tuple(manifest["input"]["shape"])
        )
        if data.shape[1:] != expected:
            raise _bad(
                "sample-shape",
                f"{name}: rows have shape {data.shape[1:]}, the manifest's input says {expected}",
                name,
            )
        if not np.isfinite(data).all():
            raise _bad("sample-not-finite", f"{name}: the sample contains NaN or infinity", name)
    return data


def sample_encode(*, space: FeatureSpace, data: Any) -> np.ndarray:
    """Map a raw sample to the space's coordinates (standardised table, or encoder output)."""
    if space.kind == Modality.TABLE:
        return TableStandardizer.from_dict(space.standardization).transform(data)
    if space.kind == Modality.IMAGE:
        return image_encoder(space.schema).encode(data).astype(np.float64)
    if is_base_space(space):  # a published base model's space: its forward pass runs in the sandbox
        from workers.pipelines.adapter_base import base_space_encode

        return base_space_encode(space, [str(t) for t in data])
    return encode_texts(list(data)).astype(np.float64)
