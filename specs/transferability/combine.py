"""Combine several transferability scores into one ranking of candidates.

Scores live on incomparable scales (LogME is a per-sample log evidence, kNN an accuracy,
H-score a trace), so each is first normalised *over the candidates of one submission*
and the normalised scores are averaged with weights.

Normalisation ("rank", the default): average ranks scaled to [0, 1], so the best
candidate on an estimator gets 1 and the worst 0 whatever the gaps (one outlier cannot
flatten the others). "minmax" is ``(v - min) / (max - min)``; when every candidate ties
the estimator carries no information and all get 0.5. "zscore" centres and scales by the
standard deviation. Lower-is-better scores (RMSE) are negated first.

``DEFAULT_WEIGHTS`` come from a measurement described in docs/ranking-and-assembly.md
(rank correlation with linear-probe accuracy over constructed candidate pools on
sklearn's digits, wine and breast-cancer data, printed by
benchmarks/estimators_vs_transformer_ranker.py --weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.stats

from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
)
from specs.transferability._checks import _as_numpy, check_choice

# Mean Kendall tau with linear-probe accuracy: kNN alone 0.902, rank(0.5 LogME + 0.5 kNN)
# 0.888, LogME alone 0.826; H-score never raised it. Two independent signals cost 0.014.
DEFAULT_WEIGHTS: dict[str, float] = {"logme": 0.5, "hscore": 0.0, "knn": 0.5}
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse"})


def normalise_scores(values: Any, method: str = "rank") -> np.ndarray:
    """Map one estimator's scores over m candidates to a common scale.

    Parameters
    ----------
    values : array-like of shape (m,)
        NaN marks a candidate the estimator could not score; it stays NaN.
    method : {"minmax", "rank", "zscore"}

    Returns
    -------
    ndarray of shape (m,)
    """
    check_choice(method, ("minmax", "rank", "zscore"), "method")
    v = _as_numpy(values).astype(np.float64).reshape(-1)
    out = np.full(v.shape, np.nan)
    ok = ~np.isnan(v)
    if np.isinf(v).any():
        raise InvalidDataError("values contain an infinite score")
    if not ok.any():
        return out
    x = v[ok]
    if method == "rank":
        out[ok] = (scipy.stats.rankdata(x) - 1.0) / max(x.shape[0] - 1, 1)
        return out
    spread = x.max() - x.min() if method == "minmax" else x.std()
    if spread == 0.0:
        out[ok] = 0.5 if method == "minmax" else 0.0
        return out
    out[ok] = (x - x.min()) / spread if method == "minmax" else (x - x.mean()) / spread
    return out


def combine_scores(
    scores: Mapping[str, Any],
    weights: Mapping[str, float] | None = None,
    *,
    method: str = "rank",
) -> np.ndarray:
    """Weighted mean of normalised scores, one value per candidate (higher is better).

    Parameters
    ----------
    scores : mapping name -> array-like of shape (m,)
        Raw scores per estimator (e.g. "logme", "hscore", "knn", "accuracy", "rmse").
    weights : mapping name -> float >= 0, optional
        Defaults to ``DEFAULT_WEIGHTS`` for the names present, 1 for other names.
    method : {"minmax", "rank", "zscore"}

    Returns
    -------
    ndarray of shape (m,)
        A candidate with a NaN score on some estimator is averaged over the others.
    """
    if not scores:
        raise InvalidDataError("scores must name at least one estimator")
    names = list(scores)
    columns = [_as_numpy(scores[name]).astype(np.float64).reshape(-1) for name in names]
    if len({c.shape for c in columns}) != 1:
        raise DimensionMismatchError(f"scores have different numbers of candidates: {names}")
    w = np.array([_weight(name, weights) for name in names])
    if w.sum() <= 0.0:
        raise InvalidParameterError(f"weights for {names} sum to zero")
    table = np.stack(
        [
            normalise_scores(-c if name in LOWER_IS_BETTER else c, method)
            for name, c in zip(names, columns, strict=True)
        ]
    )
    present = ~np.isnan(table)
    mass = (w[:, None] * present).sum(axis=0)
    total = (w[:, None] * np.where(present, table, 0.0)).sum(axis=0)
    return np.divide(total, mass, out=np.full(mass.shape, np.nan), where=mass > 0)


def _weight(name: str, weights: Mapping[str, float] | None) -> float:
    table = DEFAULT_WEIGHTS if weights is None else weights
    value = float(table.get(name, 1.0 if weights is None else 0.0))
    if value < 0.0 or not np.isfinite(value):
        raise InvalidParameterError(f"weight for {name!r} must be finite and >= 0, got {value}")
    return value
