"""Rows of data -> their RKME in a feature space: the one computation publishing, search by data,
submissions and the client all use, so a file gives the same spec wherever it is reduced.

* table rows (raw units) go through the space's ``TableStandardizer`` (the rows' own per-column
  RMS when the space is unit-free, then the space's fixed mean/scale), then ``rkme_fit``;
* encoded rows (images or texts, already in the space) go to ``rkme_fit`` as they are.

K is ``min(k, n)``: a sample smaller than K reduces to itself. ``DEFAULT_RKME_K`` is the server's
default for the setting ``LWM_RKME_K`` and the client's default (which reads the same variable).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from specs.rkme import RKMESpecification, TableStandardizer, rkme_fit

DEFAULT_RKME_K = 100
DEFAULT_RKME_SEED = 0  # the same file always gives the same spec, hence the same search results


def rkme_k_from_env() -> int:
    """K from the environment variable ``LWM_RKME_K`` (the server's setting), else ``DEFAULT_RKME_K``.

    For processes without Django settings (the client); the server reads ``settings.LWM_RKME_K``."""
    raw = os.environ.get("LWM_RKME_K", "").strip()
    if not raw:
        return DEFAULT_RKME_K
    k = int(raw)
    if k < 1:
        raise ValueError(f"LWM_RKME_K must be >= 1, got {k}")
    return k


def space_coordinates(rows: Any, standardization: dict[str, Any] | None) -> np.ndarray:
    """Raw table rows (n, d) in the space's coordinates (float64); unchanged without a standardization."""
    if standardization:
        return TableStandardizer.from_dict(standardization).transform(rows)
    return np.asarray(rows, dtype=np.float64)


def encoded_rkme(
    E: np.ndarray,
    gamma: float,
    *,
    k: int = DEFAULT_RKME_K,
    random_state: int | np.random.Generator | None = DEFAULT_RKME_SEED,
) -> RKMESpecification:
    """The RKME of rows already in the space's coordinates, with ``min(k, n)`` points."""
    return rkme_fit(E, min(k, E.shape[0]), gamma, random_state=random_state)


def table_rkme(
    rows: Any,
    standardization: dict[str, Any] | None,
    gamma: float,
    *,
    k: int = DEFAULT_RKME_K,
    random_state: int | np.random.Generator | None = DEFAULT_RKME_SEED,
) -> RKMESpecification:
    """The RKME of raw table rows (n, d) in a table space (its ``standardization`` dict and ``gamma``)."""
    return encoded_rkme(space_coordinates(rows, standardization), gamma, k=k, random_state=random_state)
