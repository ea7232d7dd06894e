"""The from-scratch models as TorchScript reproduce sklearn's predictions (real data: digits, diabetes)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits

from workers.pipelines.reuse_scratch import scratch_fit, scratch_models, scratch_torchscript


def _run(blob: bytes, X: np.ndarray) -> np.ndarray:
    model = torch.jit.load(io.BytesIO(blob))
    with torch.no_grad():
        return model(torch.from_numpy(X.astype(np.float32))).double().numpy()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["logistic_regression", "mlp"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_a_scratch_classifier_as_torchscript_gives_sklearns_probabilities(name, n_classes):
    X, y = load_digits(return_X_y=True)
    keep = y < n_classes
    X, y = X[keep][:120], y[keep][:120]
    model = scratch_fit(scratch_models("classification", 0)[name], X[:80], y[:80], "classification")
    proba = _softmax(_run(scratch_torchscript(model, "classification"), X[80:]))
    assert proba == pytest.approx(model.predict_proba(X[80:]), abs=1e-4)


@pytest.mark.parametrize("name", ["ridge", "mlp"])
def test_a_scratch_regressor_as_torchscript_gives_sklearns_predictions(name):
    X, y = load_diabetes(return_X_y=True)
    model = scratch_fit(scratch_models("regression", 0)[name], X[:100], y[:100], "regression")
    out = _run(scratch_torchscript(model, "regression"), X[100:150]).reshape(-1)
    assert out == pytest.approx(model.predict(X[100:150]), rel=1e-4, abs=1e-3)


def test_a_single_class_training_set_gives_the_constant_model():
    X = np.random.default_rng(0).normal(size=(10, 3))
    assert scratch_fit(scratch_models("classification", 0)["mlp"], X, np.full(10, 4), "classification") == 4
