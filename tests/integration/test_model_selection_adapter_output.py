"""The sandbox's training output is untrusted: model selection checks its keys, shapes (from the
base's config and the LoRA rank) and finiteness before scoring or packaging it. The sandboxed call's
output is replaced here (the worker's ``run_model``) by well-formed tensors built from the test's own
key layout, then damaged: a diverged or invalid training is a skipped adapter with its reason, never
scored through ``argmax(NaN)`` and never packaged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from marketplace.learnwares.models import Learnware
from specs.adapter_training import HEAD_BIAS, HEAD_WEIGHT, PROBA, TrainingConfig
from tests.integration.test_model_selection import LABELS, TEXTS, _publish
from tests.support.base_model_packages import base_model_folder, drop_registered_minilm
from workers.pipelines import model_selection_adapter
from workers.pipelines.embedding_cache import embedding_cache
from workers.pipelines.model_selection import evaluation_folds
from workers.pipelines.model_selection_adapter import TrainingBase, evaluate_adapter
from workers.pipelines.model_selection_embed import SandboxLayerEmbedder
from workers.sandbox.adapter_train_call import TRAIN_FILE

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CONFIG = TrainingConfig(epochs=1)
Y = np.unique(LABELS, return_inverse=True)[1].astype(np.int64)
QUERY_A = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"


def _well_formed(base: TrainingBase, predict: list[int]) -> dict[str, np.ndarray]:
    """What a sound training returns (PEFT's keys for BERT's query/value, written out here), with the
    true classes of the ``predict`` rows as probabilities: the adapter scores 1.0 on every fold."""
    out = {}
    for layer in range(base.num_layers):
        for target in ("query", "value"):
            module = f"base_model.model.encoder.layer.{layer}.attention.self.{target}"
            out[f"{module}.lora_A.weight"] = np.full((CONFIG.r, base.hidden_size), 0.01, np.float32)
            out[f"{module}.lora_B.weight"] = np.full((base.hidden_size, CONFIG.r), 0.01, np.float32)
    out[HEAD_WEIGHT] = np.ones((2, base.hidden_size), np.float32)
    out[HEAD_BIAS] = np.zeros(2, np.float32)
    out[PROBA] = np.eye(2, dtype=np.float32)[Y[predict]]
    return out


Damage = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def _sandbox(base: TrainingBase, damage: Damage, *, on_call: int) -> Callable[..., np.ndarray]:
    calls = []

    def run_model(staged: dict[str, bytes], inputs: Any, **kwargs: Any) -> np.ndarray:
        assert kwargs["train"] is True and len(inputs) == len(TEXTS)
        calls.append(1)
        out = _well_formed(base, json.loads(staged[TRAIN_FILE])["predict"])
        if len(calls) == on_call:
            out = damage(out)
        return np.frombuffer(save(out), dtype=np.uint8)

    return run_model


@pytest.fixture
def base(celery_worker, s3_storage, alice, client_for, tmp_path):
    drop_registered_minilm()
    _publish(client_for(alice), {"tiny-a": base_model_folder(tmp_path / "tiny-a", seed=1)})
    return TrainingBase(
        SandboxLayerEmbedder(Learnware.objects.get(name="tiny-a").versions.get(), embedding_cache())
    )


def _evaluate(base: TrainingBase) -> tuple[dict[str, Any], Any]:
    folds = evaluation_folds(Y, 3)
    worst = [0.0] * len(folds.splits)  # the head and the baseline score nothing: a sound adapter wins
    return evaluate_adapter(
        base, TEXTS, Y, folds, worst, worst, seed=3, budget=None, started=time.perf_counter(), config=CONFIG
    )


def test_sound_outputs_are_scored_and_packaged(base, monkeypatch):
    monkeypatch.setattr(model_selection_adapter, "run_model", _sandbox(base, lambda out: out, on_call=0))
    result, trained = _evaluate(base)
    assert result["per_fold"] == [1.0] * result["folds"]["k"] and result["replaces_head"] is True
    assert trained is not None and "not_packaged" not in result


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda out: out | {PROBA: np.full_like(out[PROBA], np.nan)}, "diverged: proba holds NaN"),
        (lambda out: out | {QUERY_A: np.full_like(out[QUERY_A], np.inf)}, f"diverged: {QUERY_A}"),
        (lambda out: {k: v for k, v in out.items() if k != PROBA}, "missing ['proba']"),
        (lambda out: out | {QUERY_A: out[QUERY_A][:4]}, f"{QUERY_A} of shape (4, "),
        (lambda out: out | {PROBA: out[PROBA][:, :1]}, "proba of shape"),
    ],
)
def test_an_invalid_fold_training_skips_the_adapter_with_the_reason(base, monkeypatch, damage, reason):
    monkeypatch.setattr(model_selection_adapter, "run_model", _sandbox(base, damage, on_call=2))
    result, trained = _evaluate(base)
    assert trained is None and set(result) == {"skipped", "hyperparameters"}
    assert result["skipped"].startswith("fold 2 of ") and reason in result["skipped"]


def test_a_diverged_final_training_is_never_packaged(base, monkeypatch):
    k = evaluation_folds(Y, 3).k
    nan_head: Damage = lambda out: out | {HEAD_WEIGHT: np.full_like(out[HEAD_WEIGHT], np.nan)}  # noqa: E731
    monkeypatch.setattr(model_selection_adapter, "run_model", _sandbox(base, nan_head, on_call=k + 1))
    result, trained = _evaluate(base)
    assert trained is None and result["replaces_head"] is False
    assert result["per_fold"] == [1.0] * k  # the folds were sound: their scores are kept
    assert "the final training on every row failed" in result["not_packaged"]
    assert "head.weight holds NaN" in result["not_packaged"] and result["not_packaged"] in result["statement"]
