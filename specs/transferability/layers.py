"""Score a transformer's hidden layers as TransformerRanker does, with the layer choice explicit.

Given one hidden-state tensor per layer, pool tokens into one vector per sample, then
score the mean of the layers ("mean"), the last layer ("last") or every layer keeping
the maximum ("best"). transformer-ranker 0.2.0 names these layermean / lastlayer /
bestlayer; its lastlayer scores layer index 0 (the first layer) - here "last" is the
final element of the list you pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.exceptions import DimensionMismatchError, InvalidDataError
from specs.transferability._checks import _as_numpy, check_choice
from specs.transferability.hscore import regularized_hscore
from specs.transferability.knn import knn_accuracy
from specs.transferability.logme import logme

Estimator = Callable[[np.ndarray, Any], float]

ESTIMATORS: dict[str, Estimator] = {
    "logme": logme,
    "hscore": regularized_hscore,
    "knn": knn_accuracy,
}


def pool_hidden_states(hidden: Any, attention_mask: Any = None, pooling: str = "mean") -> np.ndarray:
    """Pool token states of one layer into one vector per sample.

    Parameters
    ----------
    hidden : array-like of shape (n, T, h), or (n, h) when already pooled
    attention_mask : array-like of shape (n, T), optional
        1 for real tokens, 0 for padding; None means every token is real.
    pooling : {"mean", "first"}, default="mean"
        "mean": average over the masked tokens (sentence-transformers' pooling);
        "first": the first token ([CLS]).

    Returns
    -------
    ndarray of shape (n, h), float64
    """
    check_choice(pooling, ("mean", "first"), "pooling")
    H = _as_numpy(hidden).astype(np.float64, copy=False)
    if H.ndim == 2:
        return H
    if H.ndim != 3:
        raise InvalidDataError(f"hidden must be (n, T, h) or (n, h), got shape {H.shape}")
    if pooling == "first":
        return H[:, 0, :]
    if attention_mask is None:
        return H.mean(axis=1)
    mask = _as_numpy(attention_mask).astype(np.float64)
    if mask.shape != H.shape[:2]:
        raise DimensionMismatchError(
            f"attention_mask has shape {mask.shape}, hidden states need {H.shape[:2]}"
        )
    counts = mask.sum(axis=1, keepdims=True)
    if np.any(counts == 0):
        raise InvalidDataError("attention_mask has a row with no real token")
    return np.einsum("nt,nth->nh", mask, H) / counts


@dataclass(frozen=True)
class LayerScore:
    """Result of :func:`score_layers`.

    Attributes
    ----------
    score : float
        The aggregated score.
    layer : int or None
        Index of the scored layer ("last" / "best"); None for "mean".
    layer_scores : tuple of float
        Per-layer scores ("best" only; empty otherwise).
    """

    score: float
    layer: int | None
    layer_scores: tuple[float, ...]


def score_layers(
    layers: Sequence[Any],
    y: Any,
    *,
    estimator: str | Estimator = "logme",
    aggregation: str = "mean",
    pooling: str = "mean",
    attention_mask: Any = None,
) -> LayerScore:
    """Transferability of a layered model: pool, aggregate layers, score.

    Parameters
    ----------
    layers : sequence of L arrays, each (n, T, h) or pooled (n, h)
        Ordered from the first to the last layer.
    y : array-like of shape (n,)
    estimator : {"logme", "hscore", "knn"} or callable ``f(F, y) -> float``
    aggregation : {"mean", "last", "best"}, default="mean"
        "mean" scores the average of the pooled layers, "last" the final layer,
        "best" every layer and keeps the highest.
    pooling : {"mean", "first"}
    attention_mask : array-like of shape (n, T), optional

    Returns
    -------
    LayerScore
    """
    check_choice(aggregation, ("mean", "last", "best"), "aggregation")
    if isinstance(estimator, str):
        check_choice(estimator, tuple(ESTIMATORS), "estimator")
        estimator = ESTIMATORS[estimator]
    if len(layers) == 0:
        raise InvalidDataError("layers must hold at least one layer")
    if aggregation == "last":
        last = len(layers) - 1
        pooled_last = pool_hidden_states(layers[-1], attention_mask, pooling)
        return LayerScore(float(estimator(pooled_last, y)), last, ())
    pooled = [pool_hidden_states(layer, attention_mask, pooling) for layer in layers]
    if len({p.shape for p in pooled}) != 1:
        raise DimensionMismatchError(f"layers have different shapes: {[p.shape for p in pooled]}")
    if aggregation == "mean":
        return LayerScore(float(estimator(np.mean(pooled, axis=0), y)), None, ())
    scores = tuple(float(estimator(p, y)) for p in pooled)
    best = int(np.argmax(scores))
    return LayerScore(scores[best], best, scores)
