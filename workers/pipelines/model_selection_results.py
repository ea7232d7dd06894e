"""What a model-selection submission (``requirements.kind = "base_model"``) stores.

``results["rank"]`` is a :class:`BaseModelRankResult` (every candidate's per-layer scores per
estimator), ``results["evaluate"]`` a :class:`BaseModelEvaluateResult` (the head on the chosen
model against the from-scratch TF-IDF baseline). Both are ``StageResult``s of the reuse registry,
so they serialise like the other stages (field order = stored key order) and are told from the
reuse pipeline's shapes by ``kind == "base_model"``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, TypedDict

from specs.evaluation import ScoreInterval
from workers.pipelines.reuse_results import Json, StageResult, Verdict

KIND = "base_model"


class EstimatorScores(TypedDict):
    """One estimator on one candidate: the layer-mean score, the best layer's and every layer's."""

    mean: float
    best: float
    best_layer: int
    layers: list[float]


class RankedBaseModel(TypedDict):
    rank: int
    name: str
    learnware_id: int
    version_id: int
    version: int
    num_layers: int
    hidden_size: int
    combined: float
    scores: dict[str, EstimatorScores]
    seconds: float
    texts_encoded: int


class SkippedBaseModel(TypedDict):
    name: str
    learnware_id: int
    version_id: int
    version: int
    reason: str


class HeadScores(TypedDict):
    """A model's accuracy on the repeated folds: per fold and the mean with its interval."""

    name: str
    interval: ScoreInterval
    per_fold: list[float]


@dataclasses.dataclass
class BaseModelRankResult(StageResult):
    stage: ClassVar[str] = "rank"
    kind: str  # always KIND
    order_by: list[str]  # [estimator or "combined", aggregation]
    estimators: list[str]
    n_samples: int
    classes: list[str]
    time_budget_s: float | None
    candidates: list[RankedBaseModel]  # best first
    skipped_models: list[SkippedBaseModel]
    chosen: Json  # name, version_id, layer ("mean" or a layer index)
    explanation: str
    modality: str = "text"  # of the sample and of every candidate (the other modality's are left out)


@dataclasses.dataclass
class BaseModelEvaluateResult(StageResult):
    stage: ClassVar[str] = "evaluate"
    kind: str  # always KIND
    metric: str
    folds: Json  # k, repeats, n
    head: HeadScores  # the logistic head on the chosen base model's embedding
    baseline: HeadScores  # logistic regression from scratch on TF-IDF (texts) or downscaled pixels (images)
    verdict: Verdict  # head vs baseline on the same folds
    difference: ScoreInterval  # head - baseline, per fold
    winner: Json
    statement: str
    package: str  # what the delivered package holds (the head on the base model, or the from-scratch winner)
    package_sha256: str | None = None  # the delivered package's (None only in results stored before delivery)
    # requirements.adapter: the LoRA adapter's scores and verdicts, or {"skipped": reason}
    # (workers.pipelines.model_selection_adapter); absent from the stored result when not asked for.
    adapter: Json | None = None

    def to_dict(self) -> Json:
        stored = super().to_dict()
        if stored["adapter"] is None:
            del stored["adapter"]
        return stored
