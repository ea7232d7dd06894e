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
from specs.columns import ColumnError, apply_column_map
from specs.tables import is_number

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
    return (
        cells if cells and not all(is_number(c) for c in cells) else None
    )  # the rule of specs.tables.read_csv


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
            f"{what}, which does not fit the space you chose. It fits: "
            + ("; ".join(_label(s) for s in fitting) or "no published space"),
            code="search:user:dimension-mismatch",
        )
    if len(fitting) == 1:
        return Detected(fitting[0], f"{what}: detected {_label(fitting[0])}")
    if not fitting:
        raise ValidationFailed(
            f"{what}, and no published learnware takes such data", code="search:user:no-space"
        )
    raise ValidationFailed(
        f"{what}, which fits {len(fitting)} spaces: choose one of " + "; ".join(_label(s) for s in fitting),
        code="search:user:ambiguous-space",
        details={"spaces": [s.key for s in fitting]},
    )


def detect_space(
    *,
    name: str,
    content: bytes,
    spaces: Sequence[FeatureSpace],
    chosen: str = "",
    column_map: dict[str, str] | None = None,
) -> Detected:
    """The space of ``content`` (a search upload) among ``spaces``; ``chosen`` settles ties.

    A CSV header (renamed by ``column_map``) fits every table space whose columns it holds, in
    any order; extra columns are ignored; the space using most of them wins."""
    lower = name.lower()
    if lower.endswith(".json"):
        try:
            doc = json.loads(content.decode("utf-8", errors="replace"))
            d = len(doc["Z"][0])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValidationFailed(
                f"rkme: not an RKME document ({exc})", code="search:user:bad-rkme"
            ) from exc
        named = doc.get("feature_space") if isinstance(doc, dict) else None
        if named and not chosen and any(s.key == named for s in spaces):
            return _one([s for s in spaces if s.key == named], "", "The RKME names its feature space")
        return _one([s for s in spaces if s.dim == d], chosen, f"The RKME has {d} dimensions")
    if lower.endswith(TEXT_SUFFIXES):
        return _one([s for s in spaces if s.kind == Modality.TEXT], chosen, "The file holds raw texts")
    if lower.endswith(".npz"):
        shape = _npz_shape(content)
        if len(shape) in (3, 4):
            return _one(
                [s for s in spaces if s.kind == Modality.IMAGE],
                chosen,
                f"The NPZ holds images of shape {' × '.join(str(x) for x in shape[1:])}",
            )
        d = shape[1] if len(shape) == 2 else 0
        return _one(
            [s for s in spaces if s.kind == Modality.TABLE and s.dim == d], chosen, f"The NPZ has {d} columns"
        )
    header = csv_header(content)
    if header is not None:
        try:
            header = apply_column_map(header, column_map)
        except ColumnError as exc:
            raise ValidationFailed(
                f"column_map: {exc}",
                code=f"search:user:column-map-{exc.code.split(':')[-1]}",
                details={"column_map": [str(exc)], "columns": exc.columns},
            ) from exc
        held = set(header)
        covered = [
            s for s in spaces if s.kind == Modality.TABLE and _columns(s) and set(_columns(s) or []) <= held
        ]
        if covered:
            if chosen in {s.key for s in covered}:
                return _one(
                    [s for s in covered if s.key == chosen],
                    chosen,
                    f"The CSV header names {len(header)} columns",
                )
            widest = max(s.dim for s in covered)
            best = [s for s in covered if s.dim == widest]
            extra = len(header) - widest
            return _one(
                best,
                "",
                f"The CSV header names {len(header)} columns"
                + (f" ({extra} not used by the space, ignored)" if extra else ""),
            )
        # No space has all its columns here: the one holding most of them (at least half, at least two),
        # searched on what it shares (cross-space results and suggested renames say the rest).
        partial = [
            (len(set(_columns(s) or []) & held), s)
            for s in spaces
            if s.kind == Modality.TABLE and _columns(s)
        ]
        partial = [
            (n, s) for n, s in partial if n >= 2 and n * 2 >= s.dim and (not chosen or s.key == chosen)
        ]
        if partial:
            most = max(n for n, _ in partial)
            best = [s for n, s in partial if n == most]
            missing = [c for c in _columns(best[0]) or [] if c not in held]
            if len(best) == 1 or chosen:
                return Detected(
                    best[0],
                    f"The CSV holds {most} of the {best[0].dim} columns of {_label(best[0])} "
                    f"(missing: {', '.join(missing[:6])})",
                )
        d = len(header)
        fitting = [s for s in spaces if s.kind == Modality.TABLE and s.dim == d]
        what = (
            f"The CSV header names {d} columns ({', '.join(header[:6])}{', …' if d > 6 else ''}) that no "
            "space has"
        )
        if chosen:
            return _one(fitting, chosen, what)
        raise ValidationFailed(
            what
            + (
                ": if they mean the same, choose one of " + "; ".join(_label(s) for s in fitting)
                if fitting
                else ""
            ),
            code="search:user:no-space",
        )
    first = content[:65536].decode("utf-8", errors="replace").splitlines()[:1]
    d = len(first[0].split(",")) if first else 0
    return _one(
        [s for s in spaces if s.kind == Modality.TABLE and s.dim == d],
        chosen,
        f"The CSV has {d} unnamed columns",
    )
