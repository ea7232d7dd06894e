"""CSV and NPZ table files -> arrays: the one reader of submissions, search by data, package
samples and the client, so a file is read the same way wherever it is sent.

* CSV: UTF-8 (a BOM is dropped), a header row of column names (stripped), one record per row,
  blank lines skipped; every record has the header's field count; an empty cell is NaN (the
  callers refuse non-finite values by name) and any other non-number names its row and column.
  ``header=None`` detects a header: the first record is one unless every field is a number. A name
  that appears twice in the header is refused (``duplicate-column``): columns are matched by name.
* NPZ: opened with ``allow_pickle=False`` (an object array is refused, never unpickled).

Errors are :class:`TableFileError` with a ``reason`` (``bad-format``, ``not-numeric``,
``empty-data``, ``missing-labels``, ``duplicate-column``) each caller turns into its own named error code.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass

import numpy as np

from specs.exceptions import InvalidDataError

# Models run in float32 (members are TorchScript/ONNX): a value beyond its range is infinite there, and
# squared (the unit-free scale, kernels) it overflows float64 too, leaving NaN and infinities in results.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)


class TableFileError(InvalidDataError):
    """A table file that cannot be read; ``reason`` says why in one word."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CsvTable:
    """A CSV's feature rows X (n, d) float64, their column names, and the label cells when asked for."""

    X: np.ndarray
    columns: list[str] | None
    labels: list[str] | None = None


def _number(value: str, row: int, column: str) -> float:
    try:
        return float(value) if value.strip() != "" else float("nan")
    except ValueError:
        raise TableFileError(
            f"row {row}, column {column!r}: {value!r} is not a number", reason="not-numeric"
        ) from None


def is_number(value: str) -> bool:
    """Whether a CSV cell reads as a number (a first record of numbers is data, not a header)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_unique_columns(names: list[str]) -> None:
    """Refuse a column name given twice: which of the two a space's column means is unknowable."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TableFileError(
                f"column {name!r} appears twice in the header: give each column its own name",
                reason="duplicate-column",
            )
        seen.add(name)


def read_csv(raw: bytes, *, label_column: str | None = None, header: bool | None = True) -> CsvTable:
    """Rows of a CSV file; ``label_column`` is taken out of the features (its cells, stripped, as labels)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableFileError("is not UTF-8 text", reason="bad-format") from None
    records = [(number, r) for number, r in enumerate(csv.reader(io.StringIO(text)), start=1) if r]
    if not records:
        raise TableFileError("is empty: no header row", reason="empty-data")
    has_header = header if header is not None else not all(is_number(v) for v in records[0][1])
    if has_header:
        header_names = [h.strip() for h in records[0][1]]
        check_unique_columns(header_names)
        names: list[str] | None = header_names
        records = records[1:]
    else:
        names = None
    width = len(names) if names is not None else len(records[0][1])
    label_at = None
    if label_column:
        if names is None or label_column not in names:
            raise TableFileError(
                f"has no label column {label_column!r} (columns: {names})", reason="missing-labels"
            )
        label_at = names.index(label_column)
    features = [i for i in range(width) if i != label_at]
    shown = names or [str(i) for i in range(width)]
    rows, labels = [], []
    for number, record in records:
        if len(record) != width:
            raise TableFileError(
                f"row {number} has {len(record)} fields, the header {width}", reason="bad-format"
            )
        rows.append([_number(record[i], number, shown[i]) for i in features])
        if label_at is not None:
            labels.append(record[label_at].strip())
    columns = [names[i] for i in features] if names is not None else None
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(features))
    return CsvTable(X=X, columns=columns, labels=labels if label_at is not None else None)


def read_npz(raw: bytes) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, read without pickle."""
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise TableFileError(
            f"is not a readable NPZ file without pickled objects ({exc})", reason="bad-format"
        ) from None
