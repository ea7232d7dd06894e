"""Feature spaces the client picks on its own: the fixed encoder spaces and a table's covering space."""

from __future__ import annotations

from collections.abc import Iterable

from lwm_client.models import FeatureSpace

# Encoder spaces are fixed by their encoders (docs/package-format.md): key, dimension, gamma = 1 on the unit
# sphere.
ENCODER_SPACES = {
    "image": FeatureSpace(
        key="image-conv-0",
        kind="image",
        dim=128,
        gamma=1.0,
        schema={"encoder": "ConvImageEncoder", "seed": 0},
    ),
    "text": FeatureSpace(
        key="text-minilm-l6-v2", kind="text", dim=384, gamma=1.0, schema={"encoder": "all-minilm-l6-v2"}
    ),
}


def widest_covering_space(spaces: Iterable[FeatureSpace], names: list[str]) -> FeatureSpace | None:
    """The widest table space whose columns are all among ``names`` (extra columns are ignored by name,
    as the market does), or None."""
    held = set(names)
    covered = [
        s
        for s in spaces
        if s.kind == "table"
        and (s.schema or {}).get("columns")
        and {c["name"] if isinstance(c, dict) else c for c in s.schema["columns"]} <= held
    ]
    return max(covered, key=lambda s: (s.dim, s.key)) if covered else None
