"""Train a LoRA adapter and a head on a published base model, inside a sandboxed call
(``kind="peft_lora"`` in ``train`` mode, the base's folder staged under ``artifact/base/``).

Model selection's ``requirements.adapter``: the base is an upload, so it is trained only here. Its
folder goes through the same checks as the adapter-on-base call (:mod:`workers.sandbox.adapter_base_call`:
``inspect_model_folder``, an allow-listed adapter family, ``load_text_encoder`` with local files only
and no remote code); ``train.json`` beside it (written by the worker) gives the labels of the rows to
train on, the rows to predict, the seed and the hyperparameters; the texts are ``inputs.npy``.
:func:`specs.adapter_training.train_lora` trains; its tensors leave as safetensors bytes in a uint8
array (plain tensors, no pickle), read back by ``safetensors.numpy.load``.
Imports: the standard library, numpy and torch (transformers and peft lazily) — no Django.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from specs.packaging.errors import InvalidPackageError

TRAIN_FILE = "train.json"  # {labels, train, predict, n_classes, seed, hyperparameters}


def _indices(spec: dict[str, Any], key: str, n: int) -> list[int]:
    rows = [int(i) for i in spec.get(key) or []]
    if any(i < 0 or i >= n for i in rows):
        raise ValueError(f"{TRAIN_FILE}: {key} holds a row outside 0..{n - 1}")
    return rows


def train_on_base(folder: Path, inputs: np.ndarray, pooling: str) -> np.ndarray:
    """uint8 safetensors bytes of :func:`specs.adapter_training.train_lora`'s output: the LoRA trained
    with a head on the staged base for the ``train`` rows of ``inputs`` (texts), and the ``predict``
    rows' class probabilities.

    Raises
    ------
    InvalidPackageError
        ``upload:user:base-model-*`` or ``upload:user:adapter-base-unsupported`` (its folder or family).
    """
    from safetensors.numpy import save

    from specs.adapter_training import TrainingConfig, train_lora
    from workers.sandbox.adapter_base_call import _checked_base, _load

    checked = _checked_base(folder, pooling)
    spec = json.loads((folder / TRAIN_FILE).read_text())
    texts = [str(t) for t in inputs.tolist()]
    train, predict = _indices(spec, "train", len(texts)), _indices(spec, "predict", len(texts))
    labels = np.asarray(spec["labels"], dtype=np.int64)
    if labels.shape[0] != len(train):
        raise InvalidPackageError(f"{TRAIN_FILE}: one label per training row", code="upload:user:train-spec")
    out = train_lora(
        _load(checked),
        [texts[i] for i in train],
        labels,
        n_classes=int(spec["n_classes"]),
        model_type=checked.model_type,
        num_layers=checked.num_layers,
        pooling=pooling,
        seed=int(spec["seed"]),
        config=TrainingConfig.from_dict(spec.get("hyperparameters") or {}),
        predict=[texts[i] for i in predict],
    )
    return np.frombuffer(save(out), dtype=np.uint8)
