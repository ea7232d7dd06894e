"""Suggested renames for a user's unmatched columns, with the market's offline MiniLM
(``specs.column_match``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from specs.column_match import suggest_matches


def space_column_info(schema: dict[str, Any], names: Sequence[str]) -> list[Any]:
    """``names`` with the descriptions/units the space's first manifest gave (``schema.descriptions``)."""
    described = (schema or {}).get("descriptions") or {}
    return [{"name": n, **described[n]} if n in described else n for n in names]


def column_suggestions(
    *, extra: Sequence[str], missing: Sequence[str], schema: dict[str, Any]
) -> list[dict[str, Any]]:
    """Proposed ``column_map`` entries (never applied): the user's extra columns -> the space's missing
    ones."""
    if not extra or not missing:
        return []
    from marketplace.learnwares.encoding import encode_texts

    return [
        s.to_dict()
        for s in suggest_matches(list(extra), space_column_info(schema, missing), encode=encode_texts)
    ]
