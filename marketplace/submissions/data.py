"""Read a submission's table data (CSV or NPZ) or texts (JSONL) into arrays, with errors that name the
problem (images: ``image_data``, which shares ``field_error`` and ``checked_labels``).

Never unpickles: NPZ files are opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.choices import DataFormat
from specs.tables import MAX_ABS_VALUE, TableFileError, check_unique_columns, read_csv, read_npz
from specs.text_input import utf8_problem


@dataclass(frozen=True)
class TableData:
    """Rows of a table: features X (n, d), their column names, and labels y (n,) when given."""

    X: np.ndarray
    columns: list[str] | None
    y: np.ndarray | None = None


def field_error(field: str, message: str, code: str) -> ValidationFailed:
    """The error of one upload field: the message names the field, ``details`` maps it to the message."""
    return ValidationFailed(f"{field}: {message}", code=code, details={field: [message]})


def _read_csv(raw: bytes, field: str, label_column: str | None) -> TableData:
    try:
        table = read_csv(raw, label_column=label_column)
    except TableFileError as exc:
        raise field_error(field, str(exc), f"submission:user:{exc.reason}") from None
    y = None if table.labels is None else checked_labels(np.asarray(table.labels), field)
    return TableData(X=table.X, columns=table.columns, y=y)


def _rows_named(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r) + 1) for r in rows[:5])
    return f"row{'s' if rows.size > 1 else ''} {shown}{' ...' if rows.size > 5 else ''}"


def checked_labels(values: np.ndarray, field: str) -> np.ndarray:
    """:func:`label_values` of labels that are all there: an empty or NaN label is refused
    (``missing-labels``), as are infinite or out-of-range numbers (``nan``, ``out-of-range``), naming
    the rows (counted from 1 among the labelled rows)."""
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind in "USO":
        text = np.char.strip(values.astype(str))
        missing = np.flatnonzero((text == "") | (np.char.lower(text) == "nan"))
    elif values.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(values))
    else:
        missing = np.zeros(0, dtype=np.int64)
    if missing.size:
        raise field_error(
            field,
            f"no label (empty or NaN) in {_rows_named(missing)}: label every row you send",
            "submission:user:missing-labels",
        )
    y = label_values(values)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise field_error(
            field, f"infinite labels in {_rows_named(np.flatnonzero(~np.isfinite(y)))}", "submission:user:nan"
        )
    if y.dtype.kind in "iuf" and np.any(np.abs(y) > MAX_ABS_VALUE):
        rows = np.flatnonzero(np.abs(y) > MAX_ABS_VALUE)
        raise field_error(
            field,
            f"labels beyond ±{MAX_ABS_VALUE:.3g} (the float32 range models run in) in {_rows_named(rows)}",
            "submission:user:out-of-range",
        )
    return y


def label_values(values: np.ndarray) -> np.ndarray:
    """Integer-looking labels become ints (so "3" and 3 name one class), other numbers floats, words
    strings. Integer-looking labels beyond 2^53 stay the strings they were sent as: float64 holds them
    only to 53 bits (ids that differ beyond that would be one class) and int64 wraps around; classes
    are compared as strings (``str(y)`` against a learnware's ``output.classes``), so nothing is lost.
    :func:`regression_targets` reads them as numbers."""
    try:
        as_float = values.astype(np.float64)
    except ValueError:
        return values.astype(str)
    whole = np.isfinite(as_float) & (as_float == np.round(as_float))
    if np.all(whole):
        if np.all(np.abs(as_float) < 2.0**53):  # 2**53 itself may be 2**53 + 1 rounded
            return as_float.astype(np.int64)
        return np.char.strip(values.astype(str))  # an int64 array gives its exact digits too
    return as_float


# Fitting a regression head in float32 squares the targets' errors: beyond this they are infinite.
MAX_ABS_TARGET = float(np.sqrt(np.finfo(np.float32).max))


def regression_targets(y: np.ndarray, field: str) -> np.ndarray:
    """Labels a regression can be fitted and scored on: numbers within ±``MAX_ABS_TARGET`` that are not all
    one value (R², the rank scores and the baselines divide by their spread); refused by name otherwise.
    Integers beyond 2^53 come as strings (:func:`label_values`): here they are numbers."""
    if y.dtype.kind in "US":
        try:
            y = y.astype(np.float64)
        except ValueError:
            raise field_error(
                field, "regression targets must be numbers", "submission:user:labels-mismatch"
            ) from None
    if y.dtype.kind not in "iuf":
        raise field_error(field, "regression targets must be numbers", "submission:user:labels-mismatch")
    largest = float(np.abs(y).max()) if y.size else 0.0
    if largest > MAX_ABS_TARGET:
        raise field_error(
            field,
            f"regression targets reach {largest:.3g}, beyond ±{MAX_ABS_TARGET:.3g} (their squares leave the "
            "float32 range models are fitted in): rescale them",
            "submission:user:out-of-range",
        )
    if y.size and np.ptp(y) == 0:
        raise field_error(
            field,
            f"every regression target is {y.reshape(-1)[0].item()!r}: nothing to rank or score on",
            "submission:user:constant-target",
        )
    return y


def _read_npz(raw: bytes, field: str, want_labels: bool) -> TableData:
    try:
        arrays = read_npz(raw)
    except TableFileError as exc:
        raise field_error(field, str(exc), f"submission:user:{exc.reason}") from None
    if "X" not in arrays:
        hint = " (for images, send modality 'image')" if "images" in arrays else ""
        raise field_error(
            field, f"NPZ must hold an array 'X' (found {sorted(arrays)}){hint}", "submission:user:bad-format"
        )
    X = arrays["X"]
    if X.dtype.kind not in "biuf":
        raise field_error(
            field, f"array 'X' must be numeric, got dtype {X.dtype}", "submission:user:not-numeric"
        )
    columns = [str(c) for c in arrays["columns"].reshape(-1).tolist()] if "columns" in arrays else None
    if columns is not None:
        try:
            check_unique_columns(columns)
        except TableFileError as exc:
            raise field_error(field, f"array 'columns': {exc}", f"submission:user:{exc.reason}") from None
    y = None
    if want_labels:
        if "y" not in arrays:
            raise field_error(
                field, "NPZ must hold the labels as an array 'y'", "submission:user:missing-labels"
            )
        y = checked_labels(arrays["y"], field)
    return TableData(X=np.asarray(X, dtype=np.float64), columns=columns, y=y)


def read_table(
    raw: bytes, fmt: str, *, field: str, label_column: str | None = None, labelled: bool = False
) -> TableData:
    """Parse and validate one table file.

    Raises
    ------
    ValidationFailed
        Unknown format, unreadable file, empty data, non-numeric or non-finite values,
        missing or mismatched labels; the message names ``field`` and the bad row/column.
    """
    if fmt == DataFormat.CSV:
        table = _read_csv(raw, field, label_column if labelled else None)
    elif fmt == DataFormat.NPZ:
        table = _read_npz(raw, field, labelled)
    else:
        raise field_error(
            field, f"format {fmt!r} is not a table format (csv, npz)", "submission:user:bad-format"
        )
    X = table.X
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise field_error(
            field, f"holds no rows or no feature columns (shape {X.shape})", "submission:user:empty-data"
        )
    bad = ~np.isfinite(X)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        names = [table.columns[c] if table.columns else str(c) for c in cols[:5]]
        raise field_error(
            field, f"{int(bad.sum())} NaN or infinite values, in columns {names}", "submission:user:nan"
        )
    huge = np.abs(X) > MAX_ABS_VALUE
    if huge.any():
        cols = np.flatnonzero(huge.any(axis=0))
        names = [table.columns[c] if table.columns else str(c) for c in cols[:5]]
        raise field_error(
            field,
            f"{int(huge.sum())} values beyond ±{MAX_ABS_VALUE:.3g} (the float32 range models run in), "
            f"in columns {names}",
            "submission:user:out-of-range",
        )
    if table.y is not None and table.y.shape[0] != X.shape[0]:
        raise field_error(
            field, f"has {table.y.shape[0]} labels for {X.shape[0]} rows", "submission:user:labels-mismatch"
        )
    if table.columns is not None and len(table.columns) != X.shape[1]:
        raise field_error(
            field,
            f"names {len(table.columns)} columns for {X.shape[1]} features",
            "submission:user:bad-format",
        )
    return table


@dataclass(frozen=True)
class TextData:
    """Lines of a JSONL text file: the texts (n,) and their labels y (n,) when given."""

    texts: list[str]
    y: np.ndarray | None = None


MAX_TEXT_CHARS = 20_000


def read_texts(raw: bytes, *, field: str, label_key: str = "label", labelled: bool = False) -> TextData:
    """Parse one JSONL file of ``{"text": str, "label"?: ...}`` objects, one per line.

    Raises
    ------
    ValidationFailed
        Not UTF-8 (also a text or label holding a lone surrogate, which JSON can escape), a line that
        is not a JSON object with a non-empty string ``text``, a missing label where labels are
        required, or no lines; the message names the line.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise field_error(field, "is not UTF-8 text", "submission:user:bad-format") from None
    texts, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise field_error(
                field, f"line {number} is not valid JSON", "submission:user:bad-format"
            ) from None
        value = record.get("text") if isinstance(record, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise field_error(
                field, f"line {number} needs a non-empty string field 'text'", "submission:user:bad-format"
            )
        texts.append(value[:MAX_TEXT_CHARS])
        if labelled:
            if label_key not in record or record[label_key] is None:
                raise field_error(
                    field, f"line {number} has no field {label_key!r}", "submission:user:missing-labels"
                )
            labels.append(str(record[label_key]).strip())
        for name, held in (("text", value), (label_key, labels[-1] if labelled else "")):
            if problem := utf8_problem(held):  # valid JSON, but hashing or storing it fails later
                raise field_error(
                    field, f"line {number}: {name!r} holds {problem}", "submission:user:bad-format"
                )
    if not texts:
        raise field_error(field, "holds no text lines", "submission:user:empty-data")
    return TextData(texts=texts, y=checked_labels(np.asarray(labels), field) if labelled else None)
