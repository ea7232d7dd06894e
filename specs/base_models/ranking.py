"""Rank candidate base models for a labelled text task by layer-wise transferability.

For each candidate: embed the texts at every layer (:class:`LayerEmbedder`, cached), then for each
estimator score every layer and the mean of the layers with
:func:`specs.transferability.score_layers` (TransformerRanker's "bestlayer" and "layermean").
Candidates are ordered by one (estimator, aggregation) pair; ``"combined"`` is
:func:`specs.transferability.combine_scores` over the estimators (the market's rank-normalised
weighted mean, DEFAULT_WEIGHTS), taken on the chosen aggregation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.base_models.embedding import CachedLayerEmbedder
from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.transferability import DEFAULT_WEIGHTS, LogME, combine_scores, score_layers
from specs.transferability.layers import ESTIMATORS as LAYER_ESTIMATORS
from specs.transferability.layers import Estimator

# LogME's updates with thuml's (and transformer-ranker's) 1e-5 denominator guard. A labelled sample
# is often no larger than the hidden size (200 texts, 384 or 768 wide); there the features can fit
# the one-hot labels exactly, the paper's evidence is unbounded and ``logme`` refuses the layer.
# The guard keeps every candidate scored, with the same rule for all.
LOGME_EPSILON = 1e-5


def _guarded_logme(F: Any, y: Any) -> float:
    return LogME(epsilon=LOGME_EPSILON).fit(F, y).score_


ESTIMATORS: dict[str, Estimator] = {**LAYER_ESTIMATORS, "logme": _guarded_logme}

AGGREGATIONS = ("mean", "best")


@dataclass(frozen=True)
class LayerwiseScore:
    """One estimator on one candidate.

    Attributes
    ----------
    layer_mean : float
        The estimator on the mean of the layers' embeddings.
    best : float
        The highest per-layer score.
    best_layer : int
        Its index (0 = first transformer layer).
    layers : tuple of float
        Every layer's score, first to last.
    """

    layer_mean: float
    best: float
    best_layer: int
    layers: tuple[float, ...]

    def value(self, aggregation: str) -> float:
        return self.layer_mean if aggregation == "mean" else self.best


@dataclass(frozen=True)
class CandidateScores:
    """Everything measured for one candidate.

    Attributes
    ----------
    name, digest : str
    num_layers, hidden_size : int
    scores : mapping estimator -> LayerwiseScore
    combined : float
        Rank-normalised weighted mean over the estimators on the ranking's aggregation, in [0, 1].
    embed_seconds, score_seconds : float
    texts_encoded : int
        Texts run through the model (the rest came from the cache).
    """

    name: str
    digest: str
    num_layers: int
    hidden_size: int
    scores: Mapping[str, LayerwiseScore]
    combined: float
    embed_seconds: float
    score_seconds: float
    texts_encoded: int

    def value(self, estimator: str, aggregation: str) -> float:
        return self.combined if estimator == "combined" else self.scores[estimator].value(aggregation)


@dataclass(frozen=True)
class ModelRanking:
    """Candidates best first by ``order_by`` = (estimator or "combined", aggregation)."""

    candidates: tuple[CandidateScores, ...]
    order_by: tuple[str, str]
    n_samples: int
    skipped: tuple[str, ...] = ()  # candidates not scored: the time budget ran out before them

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.candidates]

    def order(self, estimator: str, aggregation: str = "mean") -> list[str]:
        """Candidate names best first by another (estimator, aggregation); ties keep name order."""
        _check_order(estimator, aggregation, tuple(self.candidates[0].scores))
        if estimator == "combined" and aggregation != self.order_by[1]:
            raise InvalidParameterError(f"combined scores were computed on aggregation {self.order_by[1]!r}")
        return [
            c.name for c in sorted(self.candidates, key=lambda c: (-c.value(estimator, aggregation), c.name))
        ]


def _check_order(estimator: str, aggregation: str, estimators: tuple[str, ...]) -> None:
    if estimator != "combined" and estimator not in estimators:
        raise InvalidParameterError(
            f"order_by estimator must be 'combined' or one of {estimators}, got {estimator!r}"
        )
    if aggregation not in AGGREGATIONS:
        raise InvalidParameterError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def _layerwise(layers: np.ndarray, y: np.ndarray, estimator: str) -> LayerwiseScore:
    per_layer = score_layers(list(layers), y, estimator=ESTIMATORS[estimator], aggregation="best")
    mean = score_layers(list(layers), y, estimator=ESTIMATORS[estimator], aggregation="mean")
    best_layer = int(np.argmax(per_layer.layer_scores))
    return LayerwiseScore(mean.score, per_layer.score, best_layer, per_layer.layer_scores)


def rank_base_models(
    candidates: Mapping[str, CachedLayerEmbedder],
    texts: Sequence[Any],
    y: Any,
    *,
    estimators: Sequence[str] = ("logme", "hscore", "knn"),
    order_by: tuple[str, str] = ("combined", "mean"),
    time_budget_s: float | None = None,
) -> ModelRanking:
    """Score every candidate on (texts, y) at every layer and order them.

    Parameters
    ----------
    candidates : mapping name -> LayerEmbedder
        Their caches may be one shared :class:`EmbeddingCache` (keys hold the model digest); each
        candidate reuses its own earlier passes over the same texts.
    texts : sequence of str (n,), or images (n, C, H, W) for image embedders
        Whatever the candidates' ``embed`` takes (every candidate of one ranking takes the same).
    y : array-like (n,)
        Class labels (at least two classes).
    estimators : names from :data:`ESTIMATORS` ("logme" with :data:`LOGME_EPSILON`, "hscore", "knn")
    order_by : (estimator or "combined", "mean" or "best")
    time_budget_s : float, optional
        Once this many seconds have passed, the candidates not yet started are skipped (listed in
        ``ModelRanking.skipped``, in the given order); the first candidate always runs, so there is
        a ranking. Order the mapping cheapest first to score the most within a budget.

    Returns
    -------
    ModelRanking
    """
    estimators = tuple(estimators)
    if not candidates:
        raise InvalidParameterError("candidates must name at least one model")
    if not estimators or any(e not in ESTIMATORS for e in estimators):
        raise InvalidParameterError(f"estimators must be among {tuple(ESTIMATORS)}, got {estimators}")
    _check_order(*order_by, estimators)
    labels = np.asarray(y).reshape(-1)
    if labels.shape[0] != len(texts) or np.unique(labels).shape[0] < 2:
        raise InvalidDataError(f"y must give one label per text ({len(texts)}) with at least two classes")
    if time_budget_s is not None and time_budget_s <= 0:
        raise InvalidParameterError(f"time_budget_s must be positive, got {time_budget_s}")
    measured: list[tuple[str, CachedLayerEmbedder, dict[str, LayerwiseScore], float, float, int]] = []
    skipped: list[str] = []
    began = time.perf_counter()
    for name, embedder in candidates.items():
        start = time.perf_counter()
        if measured and time_budget_s is not None and start - began >= time_budget_s:
            skipped.append(name)
            continue
        embedded = embedder.embed(texts)
        embedded_at = time.perf_counter()
        scores = {e: _layerwise(embedded.layers, labels, e) for e in estimators}
        measured.append(
            (
                name,
                embedder,
                scores,
                embedded_at - start,
                time.perf_counter() - embedded_at,
                embedded.texts_encoded,
            )
        )
    aggregation = order_by[1]
    # The market's weights (H-score 0: it never raised the correlation); equal ones when those
    # give the chosen estimators no weight at all (H-score alone).
    weights = {e: DEFAULT_WEIGHTS.get(e, 1.0) for e in estimators}
    if sum(weights.values()) <= 0.0:
        weights = dict.fromkeys(estimators, 1.0)
    combined = combine_scores(
        {e: [m[2][e].value(aggregation) for m in measured] for e in estimators}, weights
    )
    rows = [
        CandidateScores(
            name=name,
            digest=embedder.digest,
            num_layers=embedder.num_layers,
            hidden_size=embedder.hidden_size,
            scores=scores,
            combined=float(combined[i]),
            embed_seconds=embed_s,
            score_seconds=score_s,
            texts_encoded=encoded,
        )
        for i, (name, embedder, scores, embed_s, score_s, encoded) in enumerate(measured)
    ]
    ranking = ModelRanking(tuple(rows), order_by, int(labels.shape[0]))
    by_name = {c.name: c for c in rows}
    ordered = tuple(by_name[n] for n in ranking.order(*order_by))
    return ModelRanking(ordered, order_by, int(labels.shape[0]), tuple(skipped))
