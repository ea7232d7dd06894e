"""Model selection with ``requirements.adapter: true``: a LoRA adapter and a head trained on the chosen
text base model, compared with the frozen head and from scratch, and packaged when it wins.

The base is an upload, so training runs only in the sandbox (``run_model(..., train=True)``:
``workers.sandbox.adapter_train_call`` re-checks its folder, then ``specs.adapter_training``). One
call per fold of the evaluate stage's *first repeat* (its k folds: training k adapters on all
repeats' folds would cost repeats times more), on the same splits as the frozen head's and the
from-scratch baseline's per-fold scores, so the three are paired; one more call trains on every
labelled row for the package. The adapter replaces the frozen head when its mean gain over the head
on those folds exceeds the gain's corrected standard error (:func:`specs.evaluation.one_se_choice`,
the reuse pipeline's one-standard-error rule) and it is not worse than from scratch.

The time budget (``requirements.time_budget_s``, counted from the start of the run) is checked
before every call against the next call's expected time (the first: a FLOP estimate,
``specs.adapter_training.estimated_seconds``; then the slowest call so far): when it would be
exceeded, the adapter is skipped with that reason (never fatal; the frozen head is delivered as
without ``adapter``).

The package is the adapter package format of adapter submissions on a published base
(``workers.pipelines.reuse_adapter_package``: PEFT files, ``head.lwa``, ``recipe.json`` with
``base``), which ``Client.load`` runs with ``specs.adapter_runtime.AdapterRecipePredictor``; on the
market's registered MiniLM (no package) the recipe names no ``base`` and the client uses its local copy.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import yaml

from marketplace.core.exceptions import ApplicationError, TransientError
from marketplace.learnwares.conf import sandbox_limits
from marketplace.learnwares.services.registered import is_registered
from specs.adapter_runtime import ADAPTER_BASE
from specs.adapter_training import (
    HEAD_BIAS,
    HEAD_WEIGHT,
    PROBA,
    TrainingConfig,
    estimated_seconds,
    lora_state,
    training_problem,
)
from specs.assembly import LoRAAdapter
from specs.evaluation import Folds, metric_bounds, one_se_choice, paired_verdict, score_interval
from specs.logistic import SoftmaxRegression
from specs.recipe import RECIPE_FORMAT, recipe_version, sha256_hex
from workers.pipelines.adapter_base import BASE_PREFIX
from workers.pipelines.model_selection_embed import SandboxLayerEmbedder
from workers.pipelines.model_selection_package import DELIVERED_ADAPTER
from workers.pipelines.model_selection_results import BaseModelEvaluateResult
from workers.pipelines.reuse_adapter_package import peft_files
from workers.pipelines.reuse_adapters import head_bytes
from workers.pipelines.reuse_base import published_base_of
from workers.pipelines.reuse_members import ADAPTER_WEIGHTS
from workers.sandbox import SandboxLimits, SandboxUnavailable, run_model
from workers.sandbox.adapter_train_call import TRAIN_FILE
from workers.sandbox.errors import SandboxError

METHOD = "trained_lora"  # the recipe's method: one LoRA trained by model selection (no published members)
TRAINING_CALL_FACTOR = 10  # a training call's CPU and wall limits, in multiples of one forward call's
Json = dict[str, Any]


class TrainingBase:
    """The chosen base as the training calls stage it: its folder, pooling, shape, and the recipe's
    reference (None for the registered MiniLM, which the client has locally)."""

    def __init__(self, embedder: SandboxLayerEmbedder) -> None:
        version, row = embedder.version, embedder.version.learnware.base_model
        assert row is not None  # the embedder refuses a version without its registry row
        self.files = embedder.files()
        self.name = f"{version.learnware.name} v{version.number}"
        self.license = version.learnware.license
        self.num_layers, self.hidden_size = int(row.num_layers), int(row.hidden_size)
        self.model_type = str(json.loads(self.files["config.json"]).get("model_type", ""))
        self.pooling = "mean" if is_registered(version) else str(version.manifest.get("pooling") or "mean")
        self.published = None if is_registered(version) else published_base_of(row, version, self.files)
        self.key = ADAPTER_BASE if self.published is None else self.published.key


def train_call(
    base: TrainingBase,
    texts: list[str],
    y: np.ndarray,
    train: np.ndarray,
    predict: np.ndarray,
    *,
    n_classes: int,
    seed: int,
    config: TrainingConfig,
) -> dict[str, np.ndarray]:
    """One sandboxed training on the rows ``train`` (codes ``y[train]``); the tensors, with the
    class probabilities of the rows ``predict``.

    Raises
    ------
    TransientError, ApplicationError
        The sandbox is briefly unavailable / the base failed there (``submission:app:adapter-train-failed``).

    The tensors are the sandbox's output, not yet checked: :func:`checked_training` checks them.
    """
    from safetensors.numpy import load

    spec = {
        "labels": [int(c) for c in y[train]],
        "train": [int(i) for i in train],
        "predict": [int(i) for i in predict],
        "n_classes": n_classes,
        "seed": seed,
        "hyperparameters": config.to_dict(),
    }
    staged = {BASE_PREFIX + name: data for name, data in base.files.items()}
    staged[TRAIN_FILE] = json.dumps(spec).encode()
    limits = dict(sandbox_limits())
    limits["cpu_seconds"] = int(limits["cpu_seconds"]) * TRAINING_CALL_FACTOR
    limits["wall_seconds"] = float(limits["wall_seconds"]) * TRAINING_CALL_FACTOR
    try:
        raw = run_model(
            staged,
            np.array(texts, dtype=str),
            kind="peft_lora",
            pooling=base.pooling,
            limits=SandboxLimits(**limits),
            train=True,
        )
    except SandboxUnavailable as exc:
        raise TransientError(exc.message) from exc
    except SandboxError as exc:
        raise ApplicationError(
            f"training an adapter on {base.name} failed in the sandbox: {exc.message}",
            code="submission:app:adapter-train-failed",
            http_status=500,
        ) from exc
    return load(raw.astype(np.uint8).tobytes())


def checked_training(
    out: dict[str, np.ndarray], base: TrainingBase, config: TrainingConfig, n_classes: int, n_predict: int
) -> str | None:
    """Why a training call's output cannot be scored or packaged (its keys, shapes from the base's
    config and ``config.r``, finiteness: :func:`specs.adapter_training.training_problem`), or None."""
    problem = training_problem(
        out,
        model_type=base.model_type,
        num_layers=base.num_layers,
        hidden_size=base.hidden_size,
        n_classes=n_classes,
        n_predict=n_predict,
        r=config.r,
    )
    return None if problem is None else f"{problem} (on {base.name})"


def evaluate_adapter(
    base: TrainingBase,
    texts: list[str],
    y: np.ndarray,
    folds: Folds,
    head: list[float],
    scratch: list[float],
    *,
    seed: int,
    budget: float | None,
    started: float,
    config: TrainingConfig | None = None,
) -> tuple[Json, dict[str, np.ndarray] | None]:
    """The stored ``adapter`` result and, when it replaces the head, the tensors trained on every row.

    ``head`` and ``scratch`` are the per-fold accuracies of the frozen head and the baseline on
    ``folds`` (all repeats); the adapter is scored on the first repeat's ``folds.k`` splits.
    ``started`` is the run's ``time.perf_counter()`` start, against which ``budget`` is counted.
    """
    config = config or TrainingConfig()
    n_classes = int(y.max()) + 1
    k, share = folds.k, folds.test_share
    hyper = config.to_dict()
    tokens = sum(min(len(t.split()) * 2 + 2, config.max_length) for t in texts)  # ~2 tokens per word
    expected = estimated_seconds(
        num_layers=base.num_layers, hidden_size=base.hidden_size, tokens=tokens, config=config
    )
    per_fold: list[float] = []
    began = time.perf_counter()

    def over_budget(stage: str) -> str | None:
        spent = time.perf_counter() - started
        if budget is None or spent + expected <= budget:
            return None
        return (
            f"the time budget of {budget} s would be exceeded: {spent:.1f} s were spent and the next "
            f"training is expected to take about {expected:.1f} s (skipped {stage})"
        )

    for train, test in folds.splits[:k]:
        reason = over_budget(f"after {len(per_fold)} of {k} folds" if per_fold else "before training")
        if reason:
            return {"skipped": reason, "hyperparameters": hyper}, None
        call = time.perf_counter()
        out = train_call(base, texts, y, train, test, n_classes=n_classes, seed=seed, config=config)
        expected = max(expected if per_fold else 0.0, time.perf_counter() - call)
        invalid = checked_training(out, base, config, n_classes, len(test))
        if invalid:  # never argmax(NaN): a diverged fold skips the adapter
            return {"skipped": f"fold {len(per_fold) + 1} of {k}: {invalid}", "hyperparameters": hyper}, None
        per_fold.append(float((out[PROBA].argmax(axis=1) == y[test]).mean()))
    bounds = metric_bounds("accuracy")
    vs_head, d_head = paired_verdict(per_fold, head[:k], share)
    vs_scratch, d_scratch = paired_verdict(per_fold, scratch[:k], share)
    chosen, gains = one_se_choice("head", {"head": head[:k], "adapter": per_fold}, share)
    replaces = chosen == "adapter" and vs_scratch != "worse"
    final: dict[str, np.ndarray] | None = None
    late = over_budget("the final training on every row") if replaces else None
    if replaces and late is None:  # the package's adapter: trained on every labelled row
        everything = np.arange(len(texts))
        final = train_call(
            base, texts, y, everything, everything[:0], n_classes=n_classes, seed=seed, config=config
        )
        invalid = checked_training(final, base, config, n_classes, 0)
        if invalid:  # never packaged: the frozen head is kept, with the reason
            final, late = None, f"the final training on every row failed: {invalid}"
    replaces = final is not None
    interval = score_interval(per_fold, share, bounds=bounds)
    statement = (
        f"A LoRA adapter (r={config.r}) with a head trained on {base.name} scores {interval['mean']:.3f} "
        f"accuracy (95% CI {interval['ci95'][0]:.3f}-{interval['ci95'][1]:.3f}) on the first repeat's "
        f"{k} folds, against {np.mean(head[:k]):.3f} for the frozen head and {np.mean(scratch[:k]):.3f} "
        f"from scratch on the same folds; "
        + (
            "it replaces the frozen head (its mean gain exceeds one standard error)."
            if replaces
            else f"the frozen head is kept: {late}."
            if late
            else "the frozen head is kept (the adapter's gain does not exceed one standard error"
            + (", or it is worse than from scratch)." if chosen == "adapter" else ").")
        )
    )
    result: Json = {
        "name": f"LoRA adapter + head on {base.name}",
        "scores": interval,
        "per_fold": per_fold,
        "folds": {"k": k, "repeats": 1, "n": folds.n, "note": "the first repeat's folds of the evaluation"},
        "head_per_fold": list(head[:k]),
        "baseline_per_fold": list(scratch[:k]),
        "verdict_vs_head": vs_head,
        "difference_vs_head": d_head,
        "verdict_vs_scratch": vs_scratch,
        "difference_vs_scratch": d_scratch,
        "gain_vs_head": gains["adapter"],
        "replaces_head": replaces,
        "seconds": round(time.perf_counter() - began, 4),
        "hyperparameters": hyper,
        "statement": statement,
    }
    if late:
        result["not_packaged"] = late
    return result, final


def adapter_stage(
    evaluated: BaseModelEvaluateResult,
    embedder: SandboxLayerEmbedder,
    texts: list[str],
    y: np.ndarray,
    classes: list[str],
    folds: Folds,
    *,
    seed: int,
    budget: float | None,
    started: float,
) -> dict[str, bytes] | None:
    """:func:`evaluate_adapter` on the chosen base, recorded in ``evaluated`` (``adapter``, the
    statement, and ``winner``/``package`` when it wins); the package's files when it wins, else None."""
    base = TrainingBase(embedder)
    evaluated.adapter, trained = evaluate_adapter(
        base,
        texts,
        y,
        folds,
        evaluated.head["per_fold"],
        evaluated.baseline["per_fold"],
        seed=seed,
        budget=budget,
        started=started,
    )
    adapter = evaluated.adapter
    said = adapter.get("statement") or f"No adapter was trained: {adapter['skipped']}."
    evaluated.statement += " " + said
    if trained is None:
        return None
    evaluated.winner = {"kind": "adapter", "name": adapter["name"]}
    evaluated.package = DELIVERED_ADAPTER.format(base=base.name)
    return adapter_package_files(
        base,
        trained,
        classes,
        {"verdict": adapter["verdict_vs_scratch"], "statement": adapter["statement"]},
        int(adapter["hyperparameters"]["r"]),
    )


def _head(tensors: dict[str, np.ndarray], classes: list[str]) -> SoftmaxRegression:
    """The trained linear head as ``specs.logistic``'s model (two classes: one logit difference)."""
    W, b = tensors[HEAD_WEIGHT].astype(np.float64), tensors[HEAD_BIAS].astype(np.float64)
    if len(classes) == 2:
        W, b = (W[1] - W[0])[None, :], np.array([b[1] - b[0]])
    return SoftmaxRegression(classes=np.asarray(classes), coef=W, intercept=b, n_iter=0)


def adapter_package_files(
    base: TrainingBase, tensors: dict[str, np.ndarray], classes: list[str], evaluation: Json, r: int
) -> dict[str, bytes]:
    """The adapter package (the format of ``reuse_adapter_package``): PEFT files, ``head.lwa``,
    ``recipe.json`` (``base``: the published version trained on; none for the MiniLM), the manifest."""
    state = {k: v.astype(np.float64) for k, v in lora_state(tensors).items()}
    adapter = LoRAAdapter.from_state_dict(state, base_model=base.key, lora_alpha=float(r))
    files = peft_files(adapter) if base.published is None else peft_files(adapter, base.key)
    files["head.lwa"] = head_bytes(_head(tensors, classes))
    recipe: dict[str, Any] = {
        "format": RECIPE_FORMAT,
        "method": METHOD,
        "task": "classification",
        "classes": classes,
        "base_model": base.key,
        "base": None if base.published is None else base.published.card(),
        "assembly": {"path": ADAPTER_WEIGHTS, "kind": METHOD, "sha256": sha256_hex(files[ADAPTER_WEIGHTS])},
        "head": {"path": "head.lwa", "sha256": sha256_hex(files["head.lwa"])},
        "members": [
            {
                "name": f"LoRA trained on {base.name} by model selection",
                "trained": True,
                "artifact": {
                    "format": "peft_lora",
                    "path": ADAPTER_WEIGHTS,
                    "sha256": sha256_hex(files[ADAPTER_WEIGHTS]),
                },
            }
        ],
        "licenses": [base.license],
        "evaluation": evaluation,
    }
    recipe["version"] = recipe_version(recipe["members"])
    files["recipe.json"] = json.dumps(recipe, indent=2, sort_keys=True).encode()
    manifest = {
        "name": f"lora-head-on-{base.key}"[:100],
        "kind": "adapter",
        "modality": "text",
        "task": "embedding",
        "description": f"A LoRA adapter (r={r}) and a classification head trained on {base.name}",
        "input": {},
        "output": {"dim": base.hidden_size},
        "base_model": base.key,
        "license": base.license,
        "tags": ["model-selection", "trained-lora"],
    }
    files["learnware.yaml"] = yaml.safe_dump(manifest, sort_keys=True).encode()
    return files
