"""Training a LoRA and a head on a published base inside the sandbox (``run_model(kind="peft_lora",
train=True)``, ``workers.sandbox.adapter_train_call``): the tensors equal an in-process
``specs.adapter_training.train_lora`` with the same seed, for several allow-listed families (each
with its own query/value names); the hook runtime with the returned factors gives the probabilities
PEFT gave in the sandbox; a spoilt base folder is refused with the base model's code before training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from numpy.testing import assert_allclose
from safetensors.numpy import load

from specs.adapter_runtime import embedding, layer_states, lora_delta
from specs.adapter_training import HEAD_BIAS, HEAD_WEIGHT, PROBA, TrainingConfig, lora_state, train_lora
from specs.assembly import LoRAAdapter
from specs.base_models import inspect_model_folder, load_text_encoder
from tests.support.base_adapters import TEXTS, base_config
from tests.support.base_model_packages import BROKEN, base_model_folder
from workers.sandbox import SandboxRefused, run_model

SMALL = TrainingConfig(epochs=2, batch_size=4)
Y = np.arange(len(TEXTS)) % 2


def _staged(base_folder, train: list[int], predict: list[int], seed: int) -> dict[str, bytes]:
    spec = {
        "labels": [int(Y[i]) for i in train],
        "train": train,
        "predict": predict,
        "n_classes": 2,
        "seed": seed,
        "hyperparameters": SMALL.to_dict(),
    }
    files = {f"base/{p.name}": p.read_bytes() for p in base_folder.iterdir() if p.is_file()}
    return {**files, "train.json": json.dumps(spec).encode()}


@pytest.mark.parametrize(("family", "pooling"), [("bert", "mean"), ("distilbert", "cls"), ("mpnet", "mean")])
def test_the_sandbox_trains_as_in_process_and_the_hooks_give_its_probabilities(tmp_path, family, pooling):
    base = base_model_folder(tmp_path / family, family, seed=4, **base_config(family))
    rows = list(range(len(TEXTS)))
    raw = run_model(
        _staged(base, rows, rows, seed=7), np.array(TEXTS), kind="peft_lora", pooling=pooling, train=True
    )
    assert raw.dtype == np.uint8
    out = load(raw.tobytes())
    checked = inspect_model_folder(base)
    local = train_lora(
        load_text_encoder(checked),
        TEXTS,
        Y,
        n_classes=2,
        model_type=checked.model_type,
        num_layers=checked.num_layers,
        pooling=pooling,
        seed=7,
        config=SMALL,
        predict=TEXTS,
    )
    assert sorted(out) == sorted(local)
    for name in out:
        assert_allclose(out[name], local[name], atol=1e-6, err_msg=name)
    adapter = LoRAAdapter.from_state_dict(
        {k: v.astype(np.float64) for k, v in lora_state(out).items()}, base_model=family, lora_alpha=SMALL.r
    )
    E = embedding(
        layer_states(
            load_text_encoder(checked), TEXTS, lora_delta(adapter), sorted(adapter.factors), pooling=pooling
        )
    )
    logits = E @ out[HEAD_WEIGHT].T.astype(np.float64) + out[HEAD_BIAS]
    proba = np.exp(logits - logits.max(1, keepdims=True))
    assert_allclose(proba / proba.sum(1, keepdims=True), out[PROBA], atol=1e-5)


def test_a_spoilt_base_folder_is_refused_before_training(tmp_path):
    spoil, code = BROKEN["auto-map"]
    base = shutil.copytree(base_model_folder(tmp_path / "bert", seed=4), tmp_path / "base")
    spoil(base)
    with pytest.raises(SandboxRefused) as err:
        run_model(
            _staged(base, [0, 1], [], seed=0), np.array(TEXTS), kind="peft_lora", pooling="mean", train=True
        )
    assert err.value.code == code


def test_train_is_only_for_a_lora_on_a_published_base():
    with pytest.raises(ValueError, match="train is for"):
        run_model({}, np.array(TEXTS), kind="hf_encoder", train=True)
