"""Table columns matched by name, not by position.

A table space is a *set* of column names: its key hashes the sorted names, so a
learnware published with the same columns in another order joins the same space. The
space still stores one order (``schema.columns``, the first publisher's): its
standardiser, every RKME in it and its FAISS index are laid out in that order, and
rows reach a space, or a member, only through an :class:`Alignment` computed from names.

A user's table may hold the columns in any order, extra columns (ignored, listed in the
report) and other names, renamed by a ``column_map`` ``{"user name": "space name"}``
that the user confirms (suggestions are never applied silently).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specs.exceptions import SpecError


class ColumnError(SpecError):
    """A column list or ``column_map`` is unusable; ``code`` names which rule it breaks."""

    code = "columns:invalid"

    def __init__(self, message: str, *, code: str, columns: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.columns = list(columns)


def column_names(columns: Sequence[Any]) -> list[str]:
    """Plain names of a manifest's ``input.columns`` (strings or ``{name, description, unit}``)."""
    names = [str(c["name"]) if isinstance(c, Mapping) else str(c) for c in columns]
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        raise ColumnError(f"column {dup[0]!r} appears twice", code="columns:duplicate-column", columns=dup)
    return names


def table_space_key(columns: Sequence[Any]) -> str:
    """The key of the table space of these columns; the same for any order of the names."""
    names = sorted(column_names(columns))
    digest = hashlib.sha256(json.dumps(names, separators=(",", ":")).encode()).hexdigest()[:16]
    return f"table-{digest}"


def apply_column_map(columns: Sequence[str], column_map: Mapping[str, str] | None) -> list[str]:
    """The user's column names after renaming by ``column_map`` (user name -> space name).

    Raises :class:`ColumnError` with code ``columns:unknown-column`` when a key is not one of
    the user's columns, ``columns:duplicate-target`` when two columns would get one name
    (two keys mapped to one target, or a target that is also an unmapped column of the user),
    ``columns:bad-map`` when the map is not an object of strings."""
    names = list(columns)
    if not column_map:
        return names
    if not isinstance(column_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in column_map.items()
    ):
        raise ColumnError(
            'column_map must be an object of column names {"your name": "learnware\'s name"}',
            code="columns:bad-map",
        )
    unknown = [k for k in column_map if k not in names]
    if unknown:
        raise ColumnError(
            f"column_map renames {unknown[0]!r}, which is not one of your columns {names[:12]}",
            code="columns:unknown-column",
            columns=unknown,
        )
    renamed = [column_map.get(n, n) for n in names]
    seen: dict[str, str] = {}
    for before, after in zip(names, renamed, strict=True):
        if after in seen:
            raise ColumnError(
                f"column_map gives two columns ({seen[after]!r} and {before!r}) the name {after!r}",
                code="columns:duplicate-target",
                columns=[after],
            )
        seen[after] = before
    return renamed


@dataclass(frozen=True)
class Alignment:
    """How a source's columns (the user's, after ``column_map``) reach a target's (a space's or a member's).

    ``index[j]`` is the source column that feeds target column j, or -1 when the source lacks it
    (``missing``); ``extra`` are source columns the target does not take (ignored)."""

    source: list[str]
    target: list[str]
    index: np.ndarray = field(repr=False)

    @property
    def matched(self) -> list[str]:
        return [t for t, i in zip(self.target, self.index, strict=True) if i >= 0]

    @property
    def missing(self) -> list[str]:
        return [t for t, i in zip(self.target, self.index, strict=True) if i < 0]

    @property
    def extra(self) -> list[str]:
        used = {int(i) for i in self.index if i >= 0}
        return [c for k, c in enumerate(self.source) if k not in used]

    @property
    def coverage(self) -> float:
        """Share of the target's columns the source supplies."""
        return len(self.matched) / len(self.target) if self.target else 1.0

    @property
    def is_identity(self) -> bool:
        return self.source == self.target

    def apply(self, X: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Rows X (n, len(source)) as (n, len(target)); a missing column is ``fill`` (NaN by default)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.source):
            raise ColumnError(
                f"rows have {X.shape[-1] if X.ndim else 0} columns, the alignment expects {len(self.source)}",
                code="columns:dimension-mismatch",
            )
        if self.is_identity:
            return X
        # Keep a float dtype as it is (float32 rows stay float32: a model's input); others become float64.
        dtype = X.dtype if X.dtype.kind == "f" else np.float64
        out = np.full((X.shape[0], len(self.target)), fill, dtype=dtype)
        have = self.index >= 0
        out[:, have] = X[:, self.index[have]]
        return out

    def report(self) -> dict[str, Any]:
        """What the user is shown: which columns matched, which the target lacks, which were ignored."""
        return {
            "matched": self.matched,
            "missing": self.missing,
            "extra": self.extra,
            "coverage": round(self.coverage, 4),
            "reordered": self.matched != [c for c in self.source if c in set(self.matched)],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": list(self.source),
            "target": list(self.target),
            "index": [int(i) for i in self.index],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Alignment:
        return cls(list(doc["source"]), list(doc["target"]), np.asarray(doc["index"], dtype=np.int64))


def align(source: Sequence[str], target: Sequence[Any]) -> Alignment:
    """Match ``source`` names to ``target`` names (both duplicate-free), by name only."""
    src, tgt = column_names(source), column_names(target)
    position = {c: k for k, c in enumerate(src)}
    return Alignment(src, tgt, np.asarray([position.get(c, -1) for c in tgt], dtype=np.int64))


def align_complete(source: Sequence[str], target: Sequence[Any], *, what: str = "the learnware") -> Alignment:
    """:func:`align`, raising ``columns:missing-column`` (naming them) unless every target column is
    supplied."""
    a = align(source, target)
    if a.missing:
        raise ColumnError(
            f"your table lacks {len(a.missing)} of {what}'s columns: {a.missing[:12]}"
            + (
                f"; unmatched columns of yours: {a.extra[:12]} (rename them with column_map)"
                if a.extra
                else ""
            ),
            code="columns:missing-column",
            columns=a.missing,
        )
    return a
