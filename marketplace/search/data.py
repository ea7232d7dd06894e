"""A user's small data file (CSV or NPZ) turned into an RKME in a feature space's coordinates."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.conf import rkme_k
from marketplace.learnwares.models import FeatureSpace
from specs import RKMESpecification, SpecError, rkme_from_json
from specs.columns import Alignment, ColumnError, align_complete, apply_column_map
from specs.data_rkme import encoded_rkme, table_rkme
from specs.tables import MAX_ABS_VALUE, TableFileError, read_csv, read_npz
from specs.text_input import utf8_problem
from specs.units import check_rms, unit_rms


def parse_rkme(rkme: Any) -> RKMESpecification:
    """Load a client's RKME JSON (object or text). Raises ValidationFailed naming the bad field."""
    try:
        return rkme_from_json(rkme if isinstance(rkme, (str, bytes)) else json.dumps(rkme))
    except SpecError as exc:
        raise ValidationFailed(
            f"rkme: {exc}", code="search:user:bad-rkme", details={"rkme": [str(exc)]}
        ) from exc


def rkme_unit_rms(rkme: Any, d: int) -> np.ndarray | None:
    """The ``unit_rms`` a client sent beside its RKME (``Client.spec_table``), None when absent.
    Raises ValidationFailed when present but not d finite numbers > 0."""
    try:
        doc = json.loads(rkme) if isinstance(rkme, (str, bytes)) else rkme
    except ValueError:
        return None  # parse_rkme names the error
    values = doc.get("unit_rms") if isinstance(doc, dict) else None
    if values is None:
        return None
    try:
        return check_rms(values, d)
    except SpecError as exc:
        raise ValidationFailed(
            f"rkme: {exc}", code="search:user:bad-rkme", details={"rkme": [str(exc)]}
        ) from exc


def read_table(name: str, content: bytes) -> np.ndarray:
    """Numeric (n, d) rows from a CSV (optional header line) or an NPZ holding one array (or ``X``)
    (``specs.tables``, the submissions' and the client's reader)."""
    try:
        if name.lower().endswith(".npz"):
            arrays = read_npz(content)
            X = np.asarray(arrays["X"] if "X" in arrays else next(iter(arrays.values())), dtype=np.float64)
        else:
            X = read_csv(content, header=None).X
    except (TableFileError, ValueError, StopIteration) as exc:
        raise ValidationFailed(
            f"file {name!r} is not a numeric CSV or NPZ: {exc}",
            code="search:user:bad-file",
            details={"file": [str(exc)]},
        ) from exc
    if X.ndim != 2 or X.shape[0] == 0 or not np.isfinite(X).all():
        raise ValidationFailed(
            f"file {name!r} must hold a finite 2-D table with at least one row", code="search:user:bad-file"
        )
    if (np.abs(X) > MAX_ABS_VALUE).any():
        raise ValidationFailed(
            f"file {name!r} holds values beyond ±{MAX_ABS_VALUE:.3g} (the float32 range models run in)",
            code="search:user:bad-file",
        )
    return X


def column_alignment(
    *, space: FeatureSpace, name: str, content: bytes, column_map: dict[str, str] | None = None
) -> Alignment | None:
    """How a CSV's header (renamed by ``column_map``) reaches the space's columns; None without a
    header (columns are then taken in the space's order). Refuses a bad map or missing columns by name."""
    from marketplace.search.detect import csv_header

    columns = (space.schema or {}).get("columns")
    header = csv_header(content) if not name.lower().endswith(".npz") else None
    if header is None or not columns:
        if column_map:
            raise ValidationFailed(
                "column_map needs a CSV with a header row", code="search:user:column-map-no-header"
            )
        return None
    try:
        return align_complete(
            apply_column_map(header, column_map), columns, what=f"feature space {space.key}"
        )
    except ColumnError as exc:
        code = (
            "search:user:missing-columns"
            if exc.code == "columns:missing-column"
            else f"search:user:column-map-{exc.code.split(':')[-1]}"
        )
        raise ValidationFailed(f"file {name!r}: {exc}", code=code, details={"columns": exc.columns}) from exc


def spec_from_file(
    *, space: FeatureSpace, name: str, content: bytes, column_map: dict[str, str] | None = None
) -> RKMESpecification:
    """Standardise the rows as the space does and fit its RKME (K = ``LWM_RKME_K``, seeded).

    A CSV's columns are matched to the space's by name (any order, extra columns ignored,
    ``column_map`` renames); the spec carries the match as ``columns_report_``."""
    X = read_table(name, content)
    alignment = column_alignment(space=space, name=name, content=content, column_map=column_map)
    if alignment is not None:
        X = alignment.apply(X)
    if X.shape[1] != space.dim:
        raise ValidationFailed(
            f"file {name!r} has {X.shape[1]} columns, feature space {space.key} has {space.dim}",
            code="search:user:dimension-mismatch",
            details={"file": ["wrong number of columns"]},
        )
    try:
        spec = table_rkme(X, space.standardization, space.gamma, k=rkme_k())
    except SpecError as exc:
        raise ValidationFailed(f"file {name!r}: {exc}", code="search:user:bad-file") from exc
    spec.columns_report_ = alignment.report() if alignment is not None else None  # type: ignore[attr-defined]
    spec.unit_rms_ = unit_rms(X)  # type: ignore[attr-defined]  # the rows' units: the same-units prior
    return spec


def _images(content: bytes) -> np.ndarray:
    with np.load(io.BytesIO(content), allow_pickle=False) as npz:
        key = "X" if "X" in npz.files else "images" if "images" in npz.files else npz.files[0]
        images = np.asarray(npz[key])
    scale = 255.0 if images.dtype == np.uint8 else 1.0  # PNG-like bytes -> [0, 1], as the client reads images
    images = images.astype(np.float32) / scale
    return images[:, None] if images.ndim == 3 else images


def _texts(content: bytes, name: str) -> list[str]:
    lines = [line for line in content.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if name.lower().endswith(".jsonl"):
        try:
            lines = [str(json.loads(line)["text"]) for line in lines]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed(
                f'file {name!r}: every JSONL line needs a "text" field ({exc})', code="search:user:bad-file"
            ) from exc
    for number, text in enumerate(lines, start=1):
        if problem := utf8_problem(text):  # a JSON escape; hashing and the tokenizer fail on it
            raise ValidationFailed(
                f"file {name!r}: line {number} holds {problem}", code="search:user:bad-file"
            )
    return lines


def spec_for_space(
    *, space: FeatureSpace, name: str, content: bytes, column_map: dict[str, str] | None = None
) -> RKMESpecification:
    """The RKME of a table, an NPZ of images or a file of raw texts, in ``space``'s coordinates."""
    from marketplace.learnwares.samples import sample_encode

    if space.kind == "table":
        return spec_from_file(space=space, name=name, content=content, column_map=column_map)
    data: Any = _images(content) if space.kind == "image" else _texts(content, name)
    if len(data) == 0:
        raise ValidationFailed(f"file {name!r} holds no {space.kind} rows", code="search:user:bad-file")
    E = sample_encode(space=space, data=data)
    try:
        return encoded_rkme(E, space.gamma, k=rkme_k())
    except SpecError as exc:
        raise ValidationFailed(f"file {name!r}: {exc}", code="search:user:bad-file") from exc
