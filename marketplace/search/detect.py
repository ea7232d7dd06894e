"""Which feature space a user's search file belongs to, read from the file itself.

A CSV header names its columns (a table space is keyed by them); without a header, or for an
NPZ table, the number of columns decides when one space has it; an NPZ of (n, C, H, W) arrays
holds images; ``.txt``/``.jsonl`` hold raw texts; an rkme.json names its space or has its
dimension. When the file fits several spaces the user's choice decides, and the error lists
the spaces that fit by what they hold.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.learnwares.models import FeatureSpace

TEXT_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class Detected:
    space: FeatureSpace
    how: str  # a sentence shown to the user: why this space


def _columns(space: FeatureSpace) -> list[str] | None:
    cols = (space.schema or {}).get("columns")
    return [c["name"] if isinstance(c, dict) else str(c) for c in cols] if cols else None


def _label(space: FeatureSpace) -> str:
    from marketplace.portal.spaces import space_label

    return space_label(space)


def csv_header(content: bytes) -> list[str] | None:
    """The first line's names when it is a header (any cell that is not a number), else None."""
    try:
        first = next(csv.reader(io.StringIO(content[:65536].decode("utf-8", errors="replace"))), [])
    except csv.Error:
        return None
    cells = [c.strip() for c in first]
    def number(c: str) -> bool:
        try:
            float(c)
        except ValueError:
            return False
        return True
    return cells if cells and not all(number(c) for c in cells) else None


def _npz_shape(content: bytes) -> tuple[int, ...]:
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            key = "X" if "X" in npz.files else "images" if "images" in npz.files else npz.files[0]
            return tuple(npz[key].shape)
    except (ValueError, OSError, IndexError) as exc:
        raise ValidationFailed(f"file is not a readable NPZ: {exc}", code="search:user:bad-file") from exc


def _one(fitting: list[FeatureSpace], chosen: str, what: str) -> Detected:
    if chosen:
        match = [s for s in fitting if s.key == chosen]
        if match:
            return Detected(match[0], f"{what}: the space you chose fits it")
        raise ValidationFailed(
            f"{what}, which does not fit the space you chose. It fits: " + ("; ".join(_label(s) for s in fitting) or "no published space"),
            code="search:user:dimension-mismatch")
    if len(fitting) == 1:
        return Detected(fitting[0], f"{what}: detected {_label(fitting[0])}")
    if not fitting:
        raise ValidationFailed(f"{what}, and no published learnware takes such data", code="search:user:no-space")
    raise ValidationFailed(f"{what}, which fits {len(fitting)} spaces: choose one of "
                           + "; ".join(_label(s) for s in fitting), code="search:user:ambiguous-space",
                           details={"spaces": [s.key for s in fitting]})


def detect_space(*, name: str, content: bytes, spaces: Sequence[FeatureSpace], chosen: str = "") -> Detected:
    """The space of ``content`` (a search upload) among ``spaces``; ``chosen`` settles ties."""
    lower = name.lower()
    if lower.endswith(".json"):
        try:
            doc = json.loads(content.decode("utf-8", errors="replace"))
            d = len(doc["Z"][0])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValidationFailed(f"rkme: not an RKME document ({exc})", code="search:user:bad-rkme") from exc
        named = doc.get("feature_space") if isinstance(doc, dict) else None
        if named and not chosen and any(s.key == named for s in spaces):
            return _one([s for s in spaces if s.key == named], "", "The RKME names its feature space")
        return _one([s for s in spaces if s.dim == d], chosen, f"The RKME has {d} dimensions")
    if lower.endswith(TEXT_SUFFIXES):
        return _one([s for s in spaces if s.kind == Modality.TEXT], chosen, "The file holds raw texts")
    if lower.endswith(".npz"):
        shape = _npz_shape(content)
        if len(shape) in (3, 4):
            return _one([s for s in spaces if s.kind == Modality.IMAGE], chosen,
                        f"The NPZ holds images of shape {' × '.join(str(x) for x in shape[1:])}")
        d = shape[1] if len(shape) == 2 else 0
        return _one([s for s in spaces if s.kind == Modality.TABLE and s.dim == d], chosen, f"The NPZ has {d} columns")
    header = csv_header(content)
    if header is not None:
        exact = [s for s in spaces if s.kind == Modality.TABLE and _columns(s) == header]
        if exact:
            return _one(exact, chosen if chosen in {s.key for s in exact} else "", f"The CSV header names {len(header)} columns")
        same_set = [s for s in spaces if s.kind == Modality.TABLE and sorted(_columns(s) or []) == sorted(header)]
        if same_set:
            raise ValidationFailed(f"The CSV has the columns of {_label(same_set[0])} in another order: "
                                   f"put them in this order: {', '.join(_columns(same_set[0]) or [])}",
                                   code="search:user:column-order")
        d = len(header)
        fitting = [s for s in spaces if s.kind == Modality.TABLE and s.dim == d]
        what = f"The CSV header names {d} columns ({', '.join(header[:6])}{', …' if d > 6 else ''}) that no space has"
        if chosen:
            return _one(fitting, chosen, what)
        raise ValidationFailed(what + (": if they mean the same, choose one of " + "; ".join(_label(s) for s in fitting)
                                       if fitting else ""), code="search:user:no-space")
    first = content[:65536].decode("utf-8", errors="replace").splitlines()[:1]
    d = len(first[0].split(",")) if first else 0
    return _one([s for s in spaces if s.kind == Modality.TABLE and s.dim == d], chosen,
                f"The CSV has {d} unnamed columns")
