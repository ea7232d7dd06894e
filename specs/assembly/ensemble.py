"""Best single learnware and weighted ensembles of learnware outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.assembly._base import (
    Assembly,
    Member,
    as_array,
    as_probabilities,
    as_regression,
    check_task,
    collect_outputs,
)
from specs.exceptions import DimensionMismatchError, InvalidParameterError


def member_losses(outputs: Sequence[np.ndarray], y: Any, task: str, n_classes: int) -> np.ndarray:
    """Per-member, per-sample loss: 1 - p(true class) or squared error; shape (m, n)."""
    if task == "classification":
        codes = np.asarray(y).astype(np.int64).reshape(-1)
        if codes.min() < 0 or codes.max() >= n_classes:
            raise InvalidParameterError(f"y must hold class indices in [0, {n_classes})")
        return np.stack(
            [
                1.0 - as_probabilities(o, n_classes, f"members[{i}]")[np.arange(codes.shape[0]), codes]
                for i, o in enumerate(outputs)
            ]
        )
    target = as_regression(as_array(y, "y"), "y")
    return np.stack(
        [((as_regression(o, f"members[{i}]") - target) ** 2).sum(axis=1) for i, o in enumerate(outputs)]
    )


class _OutputCombiner(Assembly):
    """Common predict / predict_proba for assemblies that weight member outputs."""

    task: str
    n_classes: int | None
    weights_: np.ndarray

    def _evaluate(self, members: Sequence[Member], X: Any) -> np.ndarray:
        if len(members) != self.weights_.shape[0]:
            raise DimensionMismatchError(
                f"got {len(members)} members, the assembly was fitted on {self.weights_.shape[0]}"
            )
        return self._combine(collect_outputs(members, X), self.weights_)

    def _combine(self, outputs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            assert self.n_classes is not None
            stack = np.stack(
                [as_probabilities(o, self.n_classes, f"members[{i}]") for i, o in enumerate(outputs)]
            )
        else:
            stack = np.stack([as_regression(o, f"members[{i}]") for i, o in enumerate(outputs)])
        return np.tensordot(weights, stack, axes=1)

    def predict_proba(self, members: Sequence[Member], X: Any = None) -> np.ndarray:
        """Weighted average of member probabilities (hard labels count as one-hot votes).

        Returns
        -------
        ndarray of shape (n, C)
        """
        self._check_fitted()
        if self.task != "classification":
            raise InvalidParameterError("predict_proba needs task='classification'")
        return self._evaluate(members, X)

    def predict(self, members: Sequence[Member], X: Any = None) -> np.ndarray:
        """Class index (n,) for classification, weighted mean output (n,) / (n, t) otherwise."""
        self._check_fitted()
        combined = self._evaluate(members, X)
        if self.task == "classification":
            return combined.argmax(axis=1)
        return combined[:, 0] if combined.shape[1] == 1 else combined


class WeightedEnsemble(_OutputCombiner):
    """Average of member outputs with non-negative weights summing to 1.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_classes : int, optional
        Required for classification.

    Attributes
    ----------
    weights_ : ndarray of shape (m,)
    """

    kind = "weighted_ensemble"
    _fitted_attribute = "weights_"

    def __init__(self, *, task: str = "classification", n_classes: int | None = None) -> None:
        self.task = check_task(task)
        if task == "classification" and (n_classes is None or n_classes < 2):
            raise InvalidParameterError(f"n_classes must be >= 2 for classification, got {n_classes!r}")
        self.n_classes = n_classes

    def fit(
        self, members: Sequence[Member], y: Any = None, *, weights: Any = None, X: Any = None
    ) -> WeightedEnsemble:
        """Set the weights.

        Parameters
        ----------
        members : m arrays or callables (used only to count them, and for ``y``)
        y : array-like of shape (n,), optional
            With labels and no ``weights``: weight each member by its skill on them,
            ``max(mean loss of the uniform guess - mean loss, 0)``, so members no
            better than guessing get no say (uniform if none is).
        weights : array-like of shape (m,), optional
            Given weights (mixture weights, normalised ranking scores...), >= 0.
        """
        m = len(members)
        if weights is not None:
            w = as_array(weights, "weights").reshape(-1)
            if w.shape[0] != m:
                raise DimensionMismatchError(f"weights has {w.shape[0]} entries for {m} members")
        elif y is not None:
            losses = member_losses(collect_outputs(members, X), y, self.task, self.n_classes or 0)
            w = np.maximum(self._baseline_loss(y) - losses.mean(axis=1), 0.0)
        else:
            w = np.ones(m)
        if np.any(w < 0):
            raise InvalidParameterError("weights must be >= 0")
        self.weights_ = w / w.sum() if w.sum() > 0 else np.full(m, 1.0 / m)
        return self

    def _baseline_loss(self, y: Any) -> float:
        if self.task == "classification":
            assert self.n_classes is not None
            return 1.0 - 1.0 / self.n_classes
        target = as_regression(as_array(y, "y"), "y")
        return float(((target - target.mean(axis=0)) ** 2).sum(axis=1).mean())

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"task": self.task, "n_classes": self.n_classes}, {"weights": self.weights_}

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> WeightedEnsemble:
        obj = cls(task=header["task"], n_classes=header["n_classes"])
        obj.weights_ = arrays["weights"]
        return obj


class BestSingle(_OutputCombiner):
    """Use the one member with the lowest loss on the labelled sample (or the top score).

    Attributes
    ----------
    best_ : int
        Index of the chosen member.
    weights_ : ndarray of shape (m,)
        One-hot at ``best_``.
    """

    kind = "best_single"
    _fitted_attribute = "best_"

    def __init__(self, *, task: str = "classification", n_classes: int | None = None) -> None:
        self.task = check_task(task)
        if task == "classification" and (n_classes is None or n_classes < 2):
            raise InvalidParameterError(f"n_classes must be >= 2 for classification, got {n_classes!r}")
        self.n_classes = n_classes

    def fit(
        self, members: Sequence[Member], y: Any = None, *, scores: Any = None, X: Any = None
    ) -> BestSingle:
        """Choose by mean loss on ``y`` or, without labels, by ``scores`` (m,), higher is better."""
        m = len(members)
        if scores is not None:
            s = as_array(scores, "scores").reshape(-1)
            if s.shape[0] != m:
                raise DimensionMismatchError(f"scores has {s.shape[0]} entries for {m} members")
            best = int(np.argmax(s))
        elif y is not None:
            losses = member_losses(collect_outputs(members, X), y, self.task, self.n_classes or 0)
            best = int(np.argmin(losses.mean(axis=1)))
        else:
            raise InvalidParameterError("BestSingle.fit needs y or scores")
        self.best_ = best
        self.weights_ = np.eye(m)[best]
        return self

    def _evaluate(self, members: Sequence[Member], X: Any) -> np.ndarray:
        # Only the chosen member runs: the others may be expensive callables.
        if len(members) != self.weights_.shape[0]:
            raise DimensionMismatchError(
                f"got {len(members)} members, the assembly was fitted on {self.weights_.shape[0]}"
            )
        return self._combine(collect_outputs([members[self.best_]], X), np.ones(1))

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {"task": self.task, "n_classes": self.n_classes, "best": self.best_}
        return header, {"weights": self.weights_}

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> BestSingle:
        obj = cls(task=header["task"], n_classes=header["n_classes"])
        obj.best_ = int(header["best"])
        obj.weights_ = arrays["weights"]
        return obj
