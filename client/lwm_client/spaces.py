"""Feature spaces the client picks on its own: the fixed encoder spaces and a table's covering space."""

from __future__ import annotations

from collections.abc import Iterable

from lwm_client.models import FeatureSpace
from specs.image_spaces import DEFAULT_IMAGE_SPACE_KEY, IMAGE_SPACES

# Encoder spaces are fixed by their encoders (docs/package-format.md): key, dimension, gamma = 1 on the unit
# sphere.
ENCODER_SPACES = {
    # The default image space (EfficientNet-Lite0, specs.image_spaces); image-conv-0 is reached by
    # naming it (``space=``), as the market keeps its older learnwares there.
    "image": FeatureSpace(
        key=DEFAULT_IMAGE_SPACE_KEY,
        kind="image",
        dim=IMAGE_SPACES[DEFAULT_IMAGE_SPACE_KEY][1],
        gamma=1.0,
        schema=dict(IMAGE_SPACES[DEFAULT_IMAGE_SPACE_KEY][0]),
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
