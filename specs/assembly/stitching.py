"""Stitching / feature-augmentation head: a small trained model over frozen learnwares.

The head sees the concatenation of blocks - member outputs (probabilities, predictions
or embeddings) and, for tables, the raw features - and is trained on the user's
labelled sample. This is the learnware package's FeatureAugmentReuser idea, and with
embeddings as blocks it is a LangBridge-style connector between frozen modules. It can
use information that no single member exposes on its own, which a fixed combination of
member outputs cannot.

A linear classification head (``hidden=0``) is an L2 logistic regression, fitted by the
product's one trainer ``specs.logistic.fit_softmax_regression`` on every row, with the
penalty ``weight_decay`` puts on the mean loss (C = 1 / (weight_decay * n)): the objective
is convex, so no validation split or early stopping is needed. Other heads train by
full-batch Adam with early stopping on a held-out validation split; the initialisation
and the split come from ``random_state`` alone (a private ``torch.Generator``, no global seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from specs.assembly._base import Assembly, as_array, check_task
from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
)
from specs.logistic import fit_softmax_regression


def _concat(blocks: Sequence[Any]) -> np.ndarray:
    """(n, sum d_b) float64 from blocks of shape (n,) or (n, d_b)."""
    if len(blocks) == 0:
        raise InvalidDataError("blocks must hold at least one array")
    arrs = [as_array(b, f"blocks[{i}]") for i, b in enumerate(blocks)]
    arrs = [a[:, None] if a.ndim == 1 else a for a in arrs]
    if any(a.ndim != 2 for a in arrs) or len({a.shape[0] for a in arrs}) != 1:
        raise DimensionMismatchError(f"blocks must be (n, d_b) with one n: {[a.shape for a in arrs]}")
    return np.hstack(arrs)


class StitchingHead(Assembly):
    """Linear (``hidden=0``) or one-hidden-layer MLP head on concatenated blocks.

    Parameters
    ----------
    task : {"classification", "regression"}
    hidden : int, default=0
        Width of the ReLU hidden layer; 0 gives a linear (softmax / least-squares) head.
    weight_decay : float, default=1e-3
        L2 penalty on the mean loss (Adam's weight decay; the linear classifier's
        C = 1 / (weight_decay * n), so it must be > 0 there).
    lr : float, default=0.05
        Adam's step (not used by the linear classifier).
    max_epochs : int, default=500
        Adam epochs, or the linear classifier's L-BFGS iterations.
    patience : int, default=25
        Stop after this many epochs without a better validation loss; keep the best.
    validation_fraction : float, default=0.2
    random_state : int, default=0

    Attributes
    ----------
    params_ : dict of str to ndarray
        ``W1`` (p, h or k), ``b1`` and, with a hidden layer, ``W2`` (h, k), ``b2``.
    mean_, scale_ : ndarray of shape (p,)
        Standardisation of the concatenated input.
    classes_ : ndarray of shape (C,)
        Class labels (classification).
    n_epochs_ : int
    """

    kind = "stitching_head"
    _fitted_attribute = "params_"

    def __init__(
        self,
        *,
        task: str = "classification",
        hidden: int = 0,
        weight_decay: float = 1e-3,
        lr: float = 0.05,
        max_epochs: int = 500,
        patience: int = 25,
        validation_fraction: float = 0.2,
        random_state: int = 0,
    ) -> None:
        self.task = check_task(task)
        if hidden < 0 or max_epochs < 1 or patience < 1 or not 0.0 < validation_fraction < 1.0:
            raise InvalidParameterError(
                "need hidden >= 0, max_epochs >= 1, patience >= 1, 0 < validation_fraction < 1"
            )
        self.hidden, self.weight_decay, self.lr = int(hidden), float(weight_decay), float(lr)
        self.max_epochs, self.patience = int(max_epochs), int(patience)
        self.validation_fraction, self.random_state = float(validation_fraction), int(random_state)

    def _targets(self, y: Any, n: int) -> tuple[torch.Tensor, int]:
        if self.task == "classification":
            y_arr = np.asarray(y).reshape(-1)
            self.classes_, codes = np.unique(y_arr, return_inverse=True)
            if y_arr.shape[0] != n or self.classes_.shape[0] < 2:
                raise InvalidDataError(f"y must hold {n} labels of at least 2 classes")
            return torch.from_numpy(codes.astype(np.int64)), int(self.classes_.shape[0])
        t = as_array(y, "y")
        t = t[:, None] if t.ndim == 1 else t
        if t.shape[0] != n:
            raise DimensionMismatchError(f"y has {t.shape[0]} rows, blocks have {n}")
        self.classes_ = np.zeros(0)
        return torch.from_numpy(t), int(t.shape[1])

    def _init(self, p: int, k: int, gen: torch.Generator) -> list[torch.Tensor]:
        sizes = [(p, self.hidden), (self.hidden, k)] if self.hidden else [(p, k)]
        params: list[torch.Tensor] = []
        for fan_in, fan_out in sizes:
            bound = 1.0 / np.sqrt(fan_in)
            W = (torch.rand(fan_in, fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            params += [W.requires_grad_(), torch.zeros(fan_out, dtype=torch.float64, requires_grad=True)]
        return params

    def _forward(self, X: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
        out = X @ params[0] + params[1]
        if len(params) == 4:
            out = torch.relu(out) @ params[2] + params[3]
        return out

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return torch.nn.functional.cross_entropy(out, target)
        return ((out - target) ** 2).mean()

    def fit(self, blocks: Sequence[Any], y: Any) -> StitchingHead:
        """Train on blocks (each (n,) or (n, d_b)) and labels / targets y (n,) or (n, t)."""
        X = _concat(blocks)
        n = X.shape[0]
        target, k = self._targets(y, n)
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        if self.hidden == 0 and self.task == "classification":
            return self._fit_logistic((X - self.mean_) / self.scale_, target.numpy())
        Xt = torch.from_numpy((X - self.mean_) / self.scale_)
        gen = torch.Generator().manual_seed(self.random_state)
        perm = torch.randperm(n, generator=gen)
        n_val = max(1, round(self.validation_fraction * n))
        if n - n_val < 2:
            raise InvalidDataError(f"{n} samples are too few to hold out a validation split")
        val, train = perm[:n_val], perm[n_val:]
        params = self._init(X.shape[1], k, gen)
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, stale, epochs = float("inf"), [p.detach().clone() for p in params], 0, 0
        while epochs < self.max_epochs:
            epochs += 1
            opt.zero_grad()
            self._loss(self._forward(Xt[train], params), target[train]).backward()
            opt.step()
            with torch.no_grad():
                v = float(self._loss(self._forward(Xt[val], params), target[val]))
            if v < best - 1e-9:
                best, best_state, stale = v, [p.detach().clone() for p in params], 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        names = ["W1", "b1", "W2", "b2"][: len(best_state)]
        self.params_ = {name: t.numpy() for name, t in zip(names, best_state, strict=True)}
        self.n_epochs_ = epochs
        return self

    def _fit_logistic(self, Xs: np.ndarray, codes: np.ndarray) -> StitchingHead:
        """The linear classifier: ``weight_decay`` on the mean loss is C = 1 / (weight_decay * n)."""
        if not self.weight_decay > 0:
            raise InvalidParameterError("a linear classification head needs weight_decay > 0")
        k = self.classes_.shape[0]
        model = fit_softmax_regression(
            Xs,
            codes,
            classes=np.arange(k),
            C=1.0 / (self.weight_decay * Xs.shape[0]),
            max_iter=self.max_epochs,
        )
        W, b = model.full_coef()
        self.params_ = {"W1": W.T.copy(), "b1": b.copy()}
        self.n_epochs_ = model.n_iter
        return self

    def decision_function(self, blocks: Sequence[Any]) -> np.ndarray:
        """Raw head output (n, k): logits or regression values."""
        self._check_fitted()
        X = _concat(blocks)
        if X.shape[1] != self.mean_.shape[0]:
            raise DimensionMismatchError(
                f"blocks give {X.shape[1]} columns, the head expects {self.mean_.shape[0]}"
            )
        params = [torch.from_numpy(self.params_[k]) for k in ("W1", "b1", "W2", "b2") if k in self.params_]
        with torch.no_grad():
            return self._forward(torch.from_numpy((X - self.mean_) / self.scale_), params).numpy()

    def predict_proba(self, blocks: Sequence[Any]) -> np.ndarray:
        """Class probabilities (n, C), columns in the order of ``classes_``."""
        if self.task != "classification":
            raise InvalidParameterError("predict_proba needs task='classification'")
        logits = self.decision_function(blocks)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, blocks: Sequence[Any]) -> np.ndarray:
        """Labels (n,) from ``classes_``, or regression outputs (n,) / (n, t)."""
        out = self.decision_function(blocks)
        if self.task == "classification":
            return self.classes_[out.argmax(axis=1)]
        return out[:, 0] if out.shape[1] == 1 else out

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {
            "task": self.task,
            "hidden": self.hidden,
            "weight_decay": self.weight_decay,
            "lr": self.lr,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "validation_fraction": self.validation_fraction,
            "random_state": self.random_state,
            "n_epochs": self.n_epochs_,
        }
        arrays = {**self.params_, "mean": self.mean_, "scale": self.scale_, "classes": self.classes_}
        return header, arrays

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> StitchingHead:
        n_epochs = header.pop("n_epochs")
        for key in ("format", "version", "kind"):
            header.pop(key)
        obj = cls(**header)
        obj.params_ = {k: arrays[k] for k in ("W1", "b1", "W2", "b2") if k in arrays}
        obj.mean_, obj.scale_, obj.classes_ = arrays["mean"], arrays["scale"], arrays["classes"]
        obj.n_epochs_ = int(n_epochs)
        return obj
