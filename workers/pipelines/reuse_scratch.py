"""Models trained from scratch on the user's labelled rows: the evaluate stage's baselines, and
the winning one as a TorchScript learnware member.

When the evaluate stage measures that a from-scratch model beats every reuse of the market,
that model is what the user gets, packaged like an assembly of one member so ``download``
and ``predict`` work the same way. Only the two from-scratch families of the evaluate stage
are converted: a standardiser followed by a linear model (``SoftmaxRegressionClassifier``, i.e.
``specs.logistic``, or ridge) or a ReLU MLP (sklearn's ``MLPClassifier`` / ``MLPRegressor``); the module
reproduces sklearn's
``predict_proba`` / ``predict`` up to float32 rounding.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from specs.logistic import fit_softmax_regression
from workers.pipelines.reuse_methods import primary, score


class SoftmaxRegressionClassifier(ClassifierMixin, BaseEstimator):
    """``specs.logistic.fit_softmax_regression`` behind sklearn's estimator API, so the
    from-scratch baseline trains with the product's one logistic regression (same objective
    as ``LogisticRegression(C=C)``) and still fits in a ``Pipeline``."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C, self.max_iter = C, max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> SoftmaxRegressionClassifier:
        self.model_ = fit_softmax_regression(X, y, C=self.C, max_iter=self.max_iter)
        self.classes_, self.coef_, self.intercept_ = (
            self.model_.classes,
            self.model_.coef,
            self.model_.intercept,
        )
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)


def scratch_models(task: str, seed: int) -> dict[str, Pipeline]:
    if task == "classification":
        return {
            "logistic_regression": make_pipeline(StandardScaler(), SoftmaxRegressionClassifier()),
            "mlp": make_pipeline(
                StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=seed)
            ),
        }
    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "mlp": make_pipeline(
            StandardScaler(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=1000, random_state=seed)
        ),
    }


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)


def text_scratch_model() -> Pipeline:
    """A text classifier from scratch: TF-IDF of word uni- and bigrams, then the project's one
    logistic regression (what a base model's head must beat to be worth its forward passes)."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=5000),
        FunctionTransformer(_dense, accept_sparse=True),
        SoftmaxRegressionClassifier(),
    )


def scratch_fit(model: Pipeline, X: Any, y: np.ndarray, task: str) -> Pipeline | int:
    """The fitted model, or the one class of ``y`` when it holds a single class (what any
    model trained on those rows would predict: a constant)."""
    if task == "classification" and np.unique(y).shape[0] < 2:
        return int(y[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def scratch_predict(model: Pipeline | int, X: Any, task: str, n_classes: int) -> np.ndarray:
    """``X``: features, or an array of texts for :func:`text_scratch_model`."""
    if isinstance(model, int):
        return np.eye(n_classes)[np.full(X.shape[0], model)]
    if task != "classification":
        return model.predict(X)
    proba = np.zeros((X.shape[0], n_classes))
    proba[:, model.classes_.astype(np.int64)] = model.predict_proba(X)
    return proba


def scratch_fold_scores(
    template: Pipeline,
    X: Any,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    task: str,
    nc: int,
) -> list[float]:
    """The task's primary score of ``template`` refitted on each split's training rows, on its test rows."""
    metric, scores = primary(task), []
    for train, test in splits:
        model = scratch_fit(clone(template), X[train], y[train], task)
        scores.append(score(task, y[test], scratch_predict(model, X[test], task, nc), y)[metric])
    return scores


class ScratchNet(torch.nn.Module):
    """(x - mean) / scale, then affine layers with ReLU between them.

    ``binary``: the last layer gives one logit z (sklearn's binary classifiers); the output is
    then the two logits [0, z], whose softmax is [1 - sigmoid(z), sigmoid(z)]."""

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], binary: bool
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        blocks: list[torch.nn.Module] = []
        for i, (W, b) in enumerate(layers):
            linear = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(W.T, dtype=torch.float32))
                linear.bias.copy_(torch.tensor(b, dtype=torch.float32))
            blocks.append(linear)
            if i < len(layers) - 1:
                blocks.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*blocks)
        self.binary = binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Buffers read as Tensor | Module to mypy; class-level annotations would break TorchScript.
        z = self.body((x.reshape(x.shape[0], -1) - self.mean) / self.scale)  # type: ignore[operator]
        if self.binary:
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z


def scratch_net(model: Pipeline, task: str) -> ScratchNet:
    """The TorchScript-able equivalent of a fitted ``StandardScaler`` + estimator pipeline."""
    scaler, head = model.steps[0][1], model.steps[-1][1]
    mean, scale = np.asarray(scaler.mean_), np.asarray(scaler.scale_)
    if hasattr(head, "coefs_"):  # MLP: coefs_[i] is (in, out)
        layers = [(np.asarray(W), np.asarray(b)) for W, b in zip(head.coefs_, head.intercepts_, strict=True)]
    else:  # linear: coef_ is (out, in) or (in,)
        coef = np.atleast_2d(np.asarray(head.coef_))
        layers = [(coef.T, np.atleast_1d(np.asarray(head.intercept_)))]
    binary = task == "classification" and layers[-1][0].shape[1] == 1
    return ScratchNet(mean, scale, layers, binary).eval()


def scratch_torchscript(model: Pipeline, task: str) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(scratch_net(model, task)), buffer)
    return buffer.getvalue()
