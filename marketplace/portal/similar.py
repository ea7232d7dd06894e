"""Learnwares that behave alike: cosine of probe fingerprints in the same feature space.

Fingerprints are the models' outputs on the space's seeded probe set (computed at
publish time), so two learnwares are comparable only within one space and with
outputs of the same width.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.learnwares.models import LearnwareVersion, Specification
from marketplace.search.selectors import eligible_versions
from specs import SpecError, bytes_to_arrays
from specs.fingerprints import fingerprint_similarity

MAX_CANDIDATES = 500


def _fingerprint(spec: Specification) -> np.ndarray | None:
    if spec.probe_fingerprint is None:
        return None
    try:
        _, arrays = bytes_to_arrays(bytes(spec.probe_fingerprint))
    except SpecError:
        return None
    return arrays.get("outputs")


def similar_learnwares(*, user: Any, version: LearnwareVersion, k: int = 5) -> list[tuple[LearnwareVersion, float]]:
    """Up to ``k`` other visible learnwares most similar to ``version`` by probe fingerprint."""
    spec = Specification.objects.filter(version=version).first()
    mine = _fingerprint(spec) if spec is not None else None
    if mine is None:
        return []
    candidates = (
        Specification.objects.filter(version__in=eligible_versions(user=user), feature_space_id=spec.feature_space_id)
        .exclude(version__learnware_id=version.learnware_id)
        .select_related("version", "version__learnware", "version__learnware__owner")[:MAX_CANDIDATES]
    )
    scored = []
    for other in candidates:
        theirs = _fingerprint(other)
        if theirs is None or theirs.shape != mine.shape:
            continue
        try:
            scored.append((other.version, fingerprint_similarity(mine, theirs)))
        except SpecError:
            continue
    scored.sort(key=lambda item: -item[1])
    return scored[:k]
