"""Feature spaces named by what they hold: the key is a hash, a person needs the columns,
the modality and the encoder. One label function for every page that shows a space."""

from __future__ import annotations

from typing import Any

ENCODERS = {"all-minilm-l6-v2": "MiniLM (all-MiniLM-L6-v2) text embeddings"}


def space_label(space: Any, max_columns: int = 6) -> str:
    """ "table: carat, depth, table, x, y, z (6 columns)", "image 1×28×28 via conv encoder (128-d)", ..."""
    if space is None:
        return "—"
    schema = getattr(space, "schema", None) or {}
    kind, dim = getattr(space, "kind", ""), getattr(space, "dim", 0)
    if kind == "table":
        columns = [str(c) for c in schema.get("columns") or []]
        shown = ", ".join(columns[:max_columns]) + (", …" if len(columns) > max_columns else "")
        return (
            f"table: {shown} ({len(columns)} column{'s' if len(columns) != 1 else ''})"
            if columns
            else f"table, {dim} columns"
        )
    encoder = getattr(space, "encoder_id", "") or ""
    if kind == "image":
        shape = schema.get("shape") or []
        size = "×".join(str(s) for s in shape)
        via = "seeded conv encoder" if encoder.startswith("conv") else (encoder or "encoder")
        return f"images{' ' + size if size else ''} via {via} ({dim}-d)"
    if kind == "text":
        return f"text via {ENCODERS.get(encoder, encoder or 'an encoder')} ({dim}-d)"
    return f"{kind} ({dim}-d)"
