"""Model selection: which published base model should a labelled text or image task build on?

A submission with ``requirements.kind = "base_model"`` and a labelled sample (JSONL texts, or images)
runs here instead of the reuse pipeline (``workers.tasks.submissions``):

1. ``rank``: the visible base models of the sample's modality (cheapest first; a text encoder is no
   candidate for images, nor an image encoder for texts) embed the rows at every layer in the sandbox
   (``model_selection_embed``, cached per (version, text or image));
   :func:`specs.base_models.rank_base_models` scores every layer with LogME / H-score / kNN and
   orders them by the combined score on the layer mean (or the best layer,
   ``requirements.aggregation``), within ``requirements.time_budget_s``.
2. ``evaluate``: a logistic head (``specs.logistic`` via the from-scratch pipeline) on the chosen
   model's embedding against the same logistic regression from scratch on the raw input (TF-IDF of
   the texts; the images' pixels, area-downscaled to at most 16x16 per channel), on the reuse
   pipeline's repeated stratified folds, with intervals and the three-way paired verdict.

3. the package (``model_selection_package``), which ``Client.download_submission`` / ``Client.load``
   run on the user's machine: when the head is not worse than from scratch, a reference to the chosen
   base model's published version + the head refitted on every row (``specs.base_model_head``); when
   it is worse, the from-scratch winner refitted on every row (``specs.scratch_linear``).

With ``requirements.adapter`` (texts), ``evaluate`` also trains a LoRA adapter and a head on the chosen
base in the sandbox, scores it on the first repeat's folds and delivers it instead when it beats the
frozen head by more than one standard error (``model_selection_adapter``).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.submissions.image_data import ImageData
from marketplace.submissions.model_selection import (
    check_model_selection,
    sample_modality,
    visible_base_models,
)
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_stage_save
from specs.base_model_head import layer_features
from specs.base_models import ModelRanking, rank_base_models
from specs.evaluation import (
    VERDICT_WORDS,
    Folds,
    metric_bounds,
    paired_verdict,
    repeated_folds,
    score_interval,
)
from specs.scratch_linear import pixel_features
from workers.base import Report
from workers.pipelines.embedding_cache import embedding_cache
from workers.pipelines.model_selection_adapter import adapter_stage
from workers.pipelines.model_selection_embed import (
    BaseModelUnavailable,
    SandboxImageLayerEmbedder,
    SandboxLayerEmbedder,
)
from workers.pipelines.model_selection_package import (
    DELIVERED_SCRATCH,
    NO_PACKAGE_YET,
    deliver,
    delivered_message,
    package_files,
    scratch_package_files,
)
from workers.pipelines.model_selection_results import (
    KIND,
    BaseModelEvaluateResult,
    BaseModelRankResult,
    HeadScores,
    RankedBaseModel,
    SkippedBaseModel,
)
from workers.pipelines.reuse_scratch import (
    scratch_fit,
    scratch_fold_scores,
    scratch_models,
    text_scratch_model,
)
from workers.pipelines.reuse_shared import CV_FOLDS, CV_REPEATS

PIPELINE_VERSION = 3  # 2: the evaluate stage delivers a package; 3: also the from-scratch winner
ESTIMATORS = ("logme", "hscore", "knn")
TASK = "classification"  # a labelled sample: model selection ranks by class separability
NOUNS: dict[str, str] = {Modality.TEXT: "texts", Modality.IMAGE: "images"}


def _key(submission: Submission, stage: str) -> str:
    doc = {
        "pipeline": f"model-selection-{PIPELINE_VERSION}",
        "stage": stage,
        "labelled": submission.labelled_sha256,
        "requirements": submission.requirements,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _store(submission: Submission, stage: str, result: Any, started: float) -> None:
    stored = {**result.to_dict(), "key": _key(submission, stage)}
    stored["seconds"] = round(time.perf_counter() - started, 4)
    submission_stage_save(submission_id=submission.id, stage=stage, result=stored)


def rank_result(
    ranking: ModelRanking,
    embedders: dict[str, SandboxLayerEmbedder],
    classes: list[str],
    budget: float | None,
    unavailable: list[SkippedBaseModel] | None = None,
    modality: str = Modality.TEXT,
    other_modality: int = 0,
) -> BaseModelRankResult:
    """The stored ranking: every candidate's scores per estimator and layer, and the skipped ones
    (``unavailable``: those whose files are not on this worker, then those the time budget left)."""
    rows: list[RankedBaseModel] = []
    for rank, c in enumerate(ranking.candidates, start=1):
        v = embedders[c.name].version
        rows.append(
            {
                "rank": rank,
                "name": c.name,
                "learnware_id": v.learnware_id,
                "version_id": v.id,
                "version": v.number,
                "num_layers": c.num_layers,
                "hidden_size": c.hidden_size,
                "combined": c.combined,
                "scores": {
                    e: {
                        "mean": s.layer_mean,
                        "best": s.best,
                        "best_layer": s.best_layer,
                        "layers": list(s.layers),
                    }
                    for e, s in c.scores.items()
                },
                "seconds": round(c.embed_seconds + c.score_seconds, 4),
                "texts_encoded": c.texts_encoded,
            }
        )
    skipped: list[SkippedBaseModel] = list(unavailable or []) + [
        {
            "name": name,
            "learnware_id": embedders[name].version.learnware_id,
            "version_id": embedders[name].version.id,
            "version": embedders[name].version.number,
            "reason": f"the time budget of {budget} s was spent before this model's turn",
        }
        for name in ranking.skipped
    ]
    best, aggregation = ranking.candidates[0], ranking.order_by[1]
    layer: int | str = "mean" if aggregation == "mean" else best.scores["logme"].best_layer
    text = (
        f"{len(rows)} {modality} base model(s) ranked on {ranking.n_samples} labelled {NOUNS[modality]} "
        "by the combined "
        f"LogME / H-score / kNN score on the {'layer mean' if aggregation == 'mean' else 'best layer'}; "
        f"{best.name} is first."
    )
    if other_modality:
        text += (
            f" {other_modality} base model(s) of another modality are no candidates: "
            f"they cannot read {NOUNS[modality]}."
        )
    if unavailable:
        text += f" {len(unavailable)} skipped: their files are not installed."
    if ranking.skipped:
        text += f" {len(ranking.skipped)} skipped: the time budget ({budget} s) ran out."
    return BaseModelRankResult(
        kind=KIND,
        order_by=list(ranking.order_by),
        estimators=list(ESTIMATORS),
        n_samples=ranking.n_samples,
        classes=classes,
        time_budget_s=budget,
        candidates=rows,
        skipped_models=skipped,
        chosen={"name": best.name, "version_id": rows[0]["version_id"], "layer": layer},
        explanation=text,
        modality=modality,
    )


def _baseline(data: Any) -> tuple[Any, Any, str, str]:
    """(model, its input, its name, its short name): TF-IDF for texts, downscaled pixels for images
    (``specs.scratch_linear.pixel_features``, the function the client's package computes too)."""
    if isinstance(data, ImageData):
        model = scratch_models("classification", 0)["logistic_regression"]
        return (
            model,
            pixel_features(data.images),
            "logistic regression on pixels from scratch",
            "pixels from scratch",
        )
    texts = np.asarray(data.texts, dtype=object)
    return text_scratch_model(), texts, "TF-IDF + logistic regression from scratch", "TF-IDF from scratch"


def evaluation_folds(y: np.ndarray, seed: int) -> Folds:
    """The repeated stratified folds every model of the evaluate stage is scored on."""
    return repeated_folds(y, stratify=True, k=CV_FOLDS, repeats=CV_REPEATS, seed=seed)


def evaluate(
    data: Any, y: np.ndarray, features: np.ndarray, chosen: str, seed: int, folds: Folds
) -> BaseModelEvaluateResult:
    """The head on ``features`` vs the raw input from scratch (:func:`_baseline`) on ``folds``
    (:func:`evaluation_folds`, which the adapter stage reuses)."""
    nc = int(y.max()) + 1
    bounds = metric_bounds("accuracy")
    head = scratch_fold_scores(
        scratch_models("classification", seed)["logistic_regression"], features, y, folds.splits, TASK, nc
    )
    model, raw, baseline_name, short = _baseline(data)
    scratch = scratch_fold_scores(model, raw, y, folds.splits, TASK, nc)
    verdict, difference = paired_verdict(head, scratch, folds.test_share)
    head_row: HeadScores = {
        "name": f"logistic head on {chosen}",
        "interval": score_interval(head, folds.test_share, bounds=bounds),
        "per_fold": head,
    }
    base_row: HeadScores = {
        "name": baseline_name,
        "interval": score_interval(scratch, folds.test_share, bounds=bounds),
        "per_fold": scratch,
    }
    wins = verdict != "worse"  # on no difference the base model is kept: the user asked for one
    words = VERDICT_WORDS[verdict]
    statement = (
        f"A logistic head on {chosen} scores {head_row['interval']['mean']:.3f} accuracy "
        f"(95% CI {head_row['interval']['ci95'][0]:.3f}-{head_row['interval']['ci95'][1]:.3f}), "
        f"{words} {short} ({base_row['interval']['mean']:.3f}) on the same "
        f"{folds.repeats}x{folds.k} folds."
    )
    return BaseModelEvaluateResult(
        kind=KIND,
        metric="accuracy",
        folds={"k": folds.k, "repeats": folds.repeats, "n": folds.n},
        head=head_row,
        baseline=base_row,
        verdict=verdict,
        difference=difference,
        winner={
            "kind": "base_model_head" if wins else "from_scratch",
            "name": head_row["name"] if wins else base_row["name"],
        },
        statement=statement,
        package=NO_PACKAGE_YET,  # model_selection_run replaces it when it delivers the winner
    )


def scratch_winner_files(
    data: Any, y: np.ndarray, classes: list[str], evaluated: BaseModelEvaluateResult
) -> dict[str, bytes]:
    """The from-scratch winner's package: :func:`_baseline` refitted on every labelled row."""
    model, raw, _, _ = _baseline(data)
    fitted = scratch_fit(model, raw, y, TASK)
    assert not isinstance(fitted, int)  # check_model_selection refuses one-class samples
    return scratch_package_files(
        model=fitted,
        modality=Modality.IMAGE if isinstance(data, ImageData) else Modality.TEXT,
        classes=classes,
        image_shape=tuple(data.images.shape[1:]) if isinstance(data, ImageData) else None,
        evaluation={"verdict": evaluated.verdict, "statement": evaluated.statement},
    )


def visible_embedders(
    user: Any, modality: str = Modality.TEXT
) -> tuple[dict[str, SandboxLayerEmbedder], list[SkippedBaseModel]]:
    """One embedder per base model of ``modality`` that ``user`` may see, and the registered ones skipped
    because their local files are absent (never a crash: the others are still ranked).

    Raises
    ------
    ValidationFailed
        ``submission:user:no-base-models`` when every visible base model is unavailable.
    """
    cache = embedding_cache()
    embedders: dict[str, SandboxLayerEmbedder] = {}
    unavailable: list[SkippedBaseModel] = []
    make = SandboxImageLayerEmbedder if modality == Modality.IMAGE else SandboxLayerEmbedder
    for version in visible_base_models(user, modality):
        name = f"{version.learnware.name} v{version.number}"
        name = name if name not in embedders else f"{name} (#{version.learnware_id})"
        try:
            embedders[name] = make(version, cache)
        except BaseModelUnavailable as exc:
            unavailable.append(
                {
                    "name": name,
                    "learnware_id": version.learnware_id,
                    "version_id": version.id,
                    "version": version.number,
                    "reason": str(exc),
                }
            )
    if not embedders:
        raise ValidationFailed(
            "requirements.kind: no visible base model can be run here: "
            + "; ".join(f"{s['name']}: {s['reason']}" for s in unavailable),
            code="submission:user:no-base-models",
            details={"requirements": [s["reason"] for s in unavailable]},
        )
    return embedders, unavailable


def model_selection_run(*, submission_id: str, report: Report) -> dict[str, Any]:
    """Rank the visible base models on the submission's labelled texts or images, then evaluate a head.

    Raises
    ------
    ValidationFailed
        The user's sample cannot be used (named codes of ``check_model_selection``).
    ApplicationError, TransientError
        A base model failed in the sandbox / the sandbox is briefly unavailable.
    """
    submission = Submission.objects.select_related("owner").get(id=submission_id)
    requirements = submission.requirements or {}
    labelled = None
    if submission.labelled_file:
        with submission.labelled_file.open("rb") as fh:
            labelled = fh.read()
    data = check_model_selection(
        user=submission.owner,
        labelled=labelled,
        labelled_format=submission.labelled_format,
        label_key=requirements.get("label_column", "label"),
        modality=submission.modality,
        adapter=bool(requirements.get("adapter")),
    )
    assert data.y is not None
    modality = sample_modality(data)
    rows: Any = data.images if isinstance(data, ImageData) else data.texts
    classes, y = np.unique(data.y.astype(str), return_inverse=True)
    budget = requirements.get("time_budget_s")
    aggregation = requirements.get("aggregation", "mean")
    embedders, unavailable = visible_embedders(submission.owner, modality)
    other_modality = len(visible_base_models(submission.owner)) - len(embedders) - len(unavailable)
    run_started = time.perf_counter()  # requirements.time_budget_s counts from here (ranking, then training)
    report("rank", 0, 2, f"embedding {len(rows)} {NOUNS[modality]} with {len(embedders)} base models")
    started = time.perf_counter()
    ranking = rank_base_models(
        embedders,
        rows,
        y,
        estimators=ESTIMATORS,
        order_by=("combined", aggregation),
        time_budget_s=float(budget) if budget is not None else None,
    )
    ranked = rank_result(
        ranking, embedders, [str(c) for c in classes], budget, unavailable, modality, other_modality
    )
    _store(submission, "rank", ranked, started)
    report("evaluate", 1, 2, f"training a head on {ranking.names[0]}")
    started = time.perf_counter()
    embedder = embedders[ranking.names[0]]
    layers = embedder.embed(rows).layers  # cached: no second forward pass
    layer = ranked.chosen["layer"]
    features = layer_features(layers, layer)  # the client's package runtime reads the same features
    seed = int(requirements.get("seed", 0))
    folds = evaluation_folds(y.astype(np.int64), seed)  # the head's, the baseline's and the adapter's
    evaluated = evaluate(data, y.astype(np.int64), features, ranking.names[0], seed, folds)
    adapter_files = None
    if requirements.get("adapter"):  # texts only: check_model_selection refuses it for images
        report("evaluate", 1, 2, f"training LoRA adapters on {ranking.names[0]} in the sandbox")
        adapter_files = adapter_stage(
            evaluated,
            embedder,
            [str(t) for t in rows],
            y.astype(np.int64),
            [str(c) for c in classes],
            folds,
            seed=seed,
            budget=float(budget) if budget is not None else None,
            started=run_started,
        )
    if adapter_files is not None:
        files = adapter_files
    elif evaluated.winner["kind"] == "base_model_head":
        files = package_files(
            embedder=embedder,
            modality=modality,
            layer=layer,
            features=features,
            y=y.astype(np.int64),
            classes=[str(c) for c in classes],
            seed=seed,
            evaluation={"verdict": evaluated.verdict, "statement": evaluated.statement},
        )
        evaluated.package = delivered_message(embedder, layer)
    else:
        files = scratch_winner_files(data, y.astype(np.int64), [str(c) for c in classes], evaluated)
        evaluated.package = DELIVERED_SCRATCH.format(name=evaluated.winner["name"])
    evaluated.package_sha256 = deliver(submission, files)
    _store(submission, "evaluate", evaluated, started)
    return {
        "kind": KIND,
        "chosen": ranked.chosen,
        "ranking": [c["name"] for c in ranked.candidates],
        "skipped": [s["name"] for s in ranked.skipped_models],
        "verdict": evaluated.verdict,
        "statement": evaluated.statement,
        "package": evaluated.package,
    }
