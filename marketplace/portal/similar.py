"""Learnwares trained on alike data: MMD² between their specifications in the same feature space.

The earlier probe-fingerprint cosine was near 1.00 for every pair of models with the same
classes (they all predict the majority class on random probes), so it separated nothing.
MMD² of two RKMEs compares the training distributions themselves: 0 for identical data,
growing as they part, and it is the same quantity search by data ranks with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.learnwares.models import LearnwareVersion, Specification
from marketplace.search.selectors import eligible_versions
from marketplace.search.store import rkme_arrays
from specs import SpecError
from specs.mmd import mmd_squared

MAX_CANDIDATES = 500


def similar_learnwares(
    *, user: Any, version: LearnwareVersion, k: int = 5
) -> list[tuple[LearnwareVersion, float]]:
    """Up to ``k`` other visible learnwares of the same space, closest training data (lowest MMD²) first."""
    spec = Specification.objects.filter(version=version).select_related("feature_space").first()
    if spec is None:
        return []
    Z, beta = rkme_arrays(spec.rkme)
    candidates = (
        Specification.objects.filter(
            version__in=eligible_versions(user=user), feature_space_id=spec.feature_space_id
        )
        .exclude(version__learnware_id=version.learnware_id)
        .select_related("version", "version__learnware", "version__learnware__owner")[:MAX_CANDIDATES]
    )
    scored = []
    for other in candidates:
        Zo, bo = rkme_arrays(other.rkme)
        if Zo.shape[1] != Z.shape[1]:
            continue
        try:
            scored.append(
                (other.version, max(0.0, float(mmd_squared(Z, beta, Zo, bo, spec.feature_space.gamma))))
            )
        except (SpecError, ValueError):
            continue
    scored.sort(key=lambda item: (item[1], item[0].id))
    return [(v, d) for v, d in scored[:k] if np.isfinite(d)]
