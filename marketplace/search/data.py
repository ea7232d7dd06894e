"""A user's small data file (CSV or NPZ) turned into an RKME in a feature space's coordinates."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace
from specs import RKMESpecification, SpecError, TableStandardizer, rkme_fit, rkme_from_json

RKME_K = 100
RKME_SEED = 0  # the same file always gives the same spec, hence the same results


def parse_rkme(rkme: Any) -> RKMESpecification:
    """Load a client's RKME JSON (object or text). Raises ValidationFailed naming the bad field."""
    try:
        return rkme_from_json(rkme if isinstance(rkme, (str, bytes)) else json.dumps(rkme))
    except SpecError as exc:
        raise ValidationFailed(f"rkme: {exc}", code="search:user:bad-rkme", details={"rkme": [str(exc)]}) from exc


def read_table(name: str, content: bytes) -> np.ndarray:
    """Numeric (n, d) rows from a CSV (optional header line) or an NPZ holding one array (or ``X``)."""
    try:
        if name.lower().endswith(".npz"):
            with np.load(io.BytesIO(content), allow_pickle=False) as npz:
                key = "X" if "X" in npz.files else npz.files[0]
                X = np.asarray(npz[key], dtype=np.float64)
        else:
            text = content.decode("utf-8")
            first = text.splitlines()[0] if text.strip() else ""
            skip = 1 if any(c.isalpha() for c in first.replace("e", "").replace("E", "")) else 0
            X = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=skip, ndmin=2)
    except (ValueError, UnicodeDecodeError, IndexError, OSError) as exc:
        raise ValidationFailed(f"file {name!r} is not a numeric CSV or NPZ: {exc}", code="search:user:bad-file",
                               details={"file": [str(exc)]}) from exc
    if X.ndim != 2 or X.shape[0] == 0 or not np.isfinite(X).all():
        raise ValidationFailed(f"file {name!r} must hold a finite 2-D table with at least one row", code="search:user:bad-file")
    return X


def spec_from_file(*, space: FeatureSpace, name: str, content: bytes) -> RKMESpecification:
    """Standardise the rows as the space does and fit its RKME (K = 100, seeded)."""
    X = read_table(name, content)
    if X.shape[1] != space.dim:
        raise ValidationFailed(f"file {name!r} has {X.shape[1]} columns, feature space {space.key} has {space.dim}",
                               code="search:user:dimension-mismatch", details={"file": ["wrong number of columns"]})
    if space.standardization:
        X = TableStandardizer.from_dict(space.standardization).transform(X)
    try:
        return rkme_fit(X, min(RKME_K, X.shape[0]), space.gamma, random_state=RKME_SEED)
    except SpecError as exc:
        raise ValidationFailed(f"file {name!r}: {exc}", code="search:user:bad-file") from exc


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
            return [str(json.loads(line)["text"]) for line in lines]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed(f"file {name!r}: every JSONL line needs a \"text\" field ({exc})",
                                   code="search:user:bad-file") from exc
    return lines


def spec_for_space(*, space: FeatureSpace, name: str, content: bytes) -> RKMESpecification:
    """The RKME of a table, an NPZ of images or a file of raw texts, in ``space``'s coordinates."""
    from marketplace.learnwares.samples import sample_encode

    if space.kind == "table":
        return spec_from_file(space=space, name=name, content=content)
    data: Any = _images(content) if space.kind == "image" else _texts(content, name)
    if len(data) == 0:
        raise ValidationFailed(f"file {name!r} holds no {space.kind} rows", code="search:user:bad-file")
    E = sample_encode(space=space, data=data)
    try:
        return rkme_fit(E, min(RKME_K, E.shape[0]), space.gamma, random_state=RKME_SEED)
    except SpecError as exc:
        raise ValidationFailed(f"file {name!r}: {exc}", code="search:user:bad-file") from exc
