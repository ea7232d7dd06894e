"""``specs.adapter_training.train_lora``: PEFT training of a LoRA and a head on a tiny random BERT.

The trained factors, applied by the hook runtime (``specs.adapter_runtime``, what packages run) with
the head in numpy, give the probabilities PEFT's own forward gave at the end of training; the same
seed gives the same tensors, another seed others; the targets are each family's query and value.
"""

from __future__ import annotations

import numpy as np
import pytest

from specs.adapter_runtime import embedding, layer_states, lora_delta
from specs.adapter_training import (
    GFLOPS,
    HEAD_BIAS,
    HEAD_WEIGHT,
    PROBA,
    TrainingConfig,
    estimated_seconds,
    lora_state,
    lora_targets,
    train_lora,
    training_problem,
)
from specs.assembly import LoRAAdapter
from specs.base_models import inspect_model_folder, load_text_encoder
from specs.exceptions import InvalidDataError
from tests.support.adapters import TOPICS
from tests.support.base_model_packages import base_model_folder

TOPIC_A, TOPIC_B = sorted(TOPICS)[:2]
TEXTS = [t for t, _ in TOPICS[TOPIC_A]] + [t for t, _ in TOPICS[TOPIC_B]]
Y = np.array([0] * len(TOPICS[TOPIC_A]) + [1] * len(TOPICS[TOPIC_B]))
SMALL = TrainingConfig(epochs=2)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return inspect_model_folder(base_model_folder(tmp_path_factory.mktemp("base") / "bert", seed=1))


def _train(checked, seed: int, **kwargs) -> dict[str, np.ndarray]:
    return train_lora(
        load_text_encoder(checked),  # PEFT wraps the model in place: a fresh one per training
        TEXTS,
        Y,
        n_classes=2,
        model_type=checked.model_type,
        num_layers=checked.num_layers,
        pooling=kwargs.pop("pooling", "mean"),
        seed=seed,
        config=SMALL,
        predict=TEXTS,
        **kwargs,
    )


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_hook_runtime_with_the_trained_factors_gives_pefts_probabilities(checked, pooling):
    out = _train(checked, seed=3, pooling=pooling)
    state = {k: v.astype(np.float64) for k, v in lora_state(out).items()}
    assert len(state) == 2 * 2 * checked.num_layers  # A and B of query and value in every layer
    assert all(np.abs(v).max() > 0 for k, v in state.items() if "lora_B" in k)  # B left zero: not trained
    adapter = LoRAAdapter.from_state_dict(state, base_model="tiny", lora_alpha=float(SMALL.r))
    E = embedding(
        layer_states(
            load_text_encoder(checked), TEXTS, lora_delta(adapter), sorted(adapter.factors), pooling=pooling
        )
    )
    logits = E @ out[HEAD_WEIGHT].T.astype(np.float64) + out[HEAD_BIAS]
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, out[PROBA], atol=1e-5)
    # The adapter changed the embedding: the same head on the base alone gives other probabilities.
    alone = embedding(layer_states(load_text_encoder(checked), TEXTS, pooling=pooling))
    assert np.abs(alone - E).max() > 1e-4


def _problem(checked, out: dict[str, np.ndarray]) -> str | None:
    return training_problem(
        out,
        model_type=checked.model_type,
        num_layers=checked.num_layers,
        hidden_size=checked.hidden_size,
        n_classes=2,
        n_predict=len(TEXTS),
        r=SMALL.r,
    )


def test_a_real_training_passes_the_output_check_and_damaged_outputs_are_named(checked):
    out = _train(checked, seed=3)
    assert _problem(checked, out) is None
    query_a = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"  # PEFT's key, by hand
    assert out[query_a].shape == (SMALL.r, checked.hidden_size)
    nan = dict(out, **{PROBA: np.full_like(out[PROBA], np.nan)})
    assert "diverged" in str(_problem(checked, nan)) and PROBA in str(_problem(checked, nan))
    inf = dict(out, **{query_a: np.full_like(out[query_a], np.inf)})
    assert query_a in str(_problem(checked, inf))
    missing = {k: v for k, v in out.items() if k != PROBA}
    assert "missing ['proba']" in str(_problem(checked, missing))
    extra = dict(out, **{"base_model.model.pooler.dense.lora_A.weight": out[query_a]})
    assert "unexpected" in str(_problem(checked, extra))
    other_rank = dict(out, **{query_a: np.zeros((4, checked.hidden_size), np.float32)})
    assert query_a in str(_problem(checked, other_rank)) and "shape (4," in str(_problem(checked, other_rank))
    short = dict(out, **{PROBA: out[PROBA][:-1]})
    assert PROBA in str(_problem(checked, short))


def test_a_seed_fixes_every_tensor_and_another_seed_changes_them(checked):
    first, again, other = _train(checked, seed=3), _train(checked, seed=3), _train(checked, seed=4)
    assert sorted(first) == sorted(again) == sorted(other)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_targets_are_each_familys_query_and_value_projections():
    assert lora_targets("bert", 2) == [
        "encoder.layer.0.attention.self.query",
        "encoder.layer.0.attention.self.value",
        "encoder.layer.1.attention.self.query",
        "encoder.layer.1.attention.self.value",
    ]
    assert lora_targets("distilbert", 1) == [
        "transformer.layer.0.attention.q_lin",
        "transformer.layer.0.attention.v_lin",
    ]
    assert lora_targets("deberta-v2", 1)[1] == "encoder.layer.0.attention.self.value_proj"


def test_the_estimate_grows_with_tokens_and_epochs_and_the_config_round_trips():
    one = estimated_seconds(num_layers=6, hidden_size=384, tokens=1000, config=SMALL)
    assert estimated_seconds(num_layers=6, hidden_size=384, tokens=2000, config=SMALL) == pytest.approx(
        2 * one
    )
    thrice = TrainingConfig.from_dict({**SMALL.to_dict(), "epochs": 3 * SMALL.epochs})
    assert estimated_seconds(num_layers=6, hidden_size=384, tokens=1000, config=thrice) == pytest.approx(
        3 * one
    )
    # 6 FLOPs per parameter and token over ~12 h^2 parameters per layer, at GFLOPS.
    assert one == pytest.approx(6 * 12 * 6 * 384**2 * 1000 * SMALL.epochs / (GFLOPS * 1e9))
    assert TrainingConfig.from_dict(SMALL.to_dict()) == SMALL and SMALL.to_dict()["lora_alpha"] == SMALL.r


def test_labels_outside_the_classes_are_refused(checked):
    with pytest.raises(InvalidDataError):
        train_lora(
            load_text_encoder(checked),
            TEXTS,
            Y + 1,
            n_classes=2,
            model_type="bert",
            num_layers=2,
            pooling="mean",
            seed=0,
        )
