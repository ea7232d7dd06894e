"""The assembly methods as the pipeline (and a package's predictor) use them: fit and predict
on member outputs in the task's class order, with the user's rows in space coordinates.

Shapes: ``outputs`` is one array per member, (n, C) probabilities over the task's C
classes for classification or (n,) predictions for regression; ``Xs`` (n, d) are the rows
mapped by the space transform; ``y`` (n,) are class indices or targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.assembly import (
    Assembly,
    BestSingle,
    RKMEJobSelector,
    StitchingHead,
    TrainedJobSelector,
    WeightedEnsemble,
)

LABELLED_METHODS = ("best_single", "weighted_ensemble", "rkme_job_selector", "trained_job_selector", "stitching_head")
ZERO_SHOT_METHODS = ("best_single", "weighted_ensemble", "rkme_job_selector")
# The space's gamma (~ the median heuristic) suits MMD between data sets, but per-row densities
# under it are so flat that mixture weights, not the row, decide the route. Measured on the
# digits market (docs/submissions.md): routing accuracy over 20 two-domain users, mean / worst,
# was 0.92 / 0.64 at 1x gamma, 0.96 / 0.77 at 4x, 0.97 / 0.84 at 16x with uniform weights, and
# mixture weights as priors made it worse at every bandwidth (0.48 / 0.30 at 1x). The factor is
# not a digits constant: on Fashion-MNIST under the same five transforms (196-d) 16x was again
# the best fixed factor, and choosing gamma by the likelihood of the user's own rows under the
# RKME mixture (a rule with no constant) routed worse on both (benchmarks/route_bandwidth.py).
ROUTE_GAMMA_FACTOR = 16.0
MULTI_MEMBER = {"weighted_ensemble", "rkme_job_selector", "trained_job_selector"}


def applicable(methods: Sequence[str], n_members: int, allowed: Sequence[str] | None) -> list[str]:
    """Methods that make sense for this many members and that the user allows."""
    out = [m for m in methods if n_members >= 2 or m not in MULTI_MEMBER]
    return [m for m in out if not allowed or m in allowed]


def fit_method(
    method: str, *, task: str, n_classes: int | None, outputs: list[np.ndarray], Xs: np.ndarray | None,
    y: np.ndarray | None, rkmes: list[tuple[np.ndarray, np.ndarray]], gamma: float, prior: np.ndarray,
    seed: int, mmd2: np.ndarray | None = None, route_weights: np.ndarray | None = None,
) -> Assembly:
    """Fit one method; without ``y`` only the zero-shot ones are defined.

    ``prior`` (m,) are the identification weights (mixture weights, or one-hot on the best
    single) and ``mmd2`` (m,) each member's MMD^2 to the user's data: zero-shot methods
    use them where labels would otherwise decide (``outputs`` may then be empty).
    ``route_weights`` (m,) restrict the RKME job selector: a member of weight 0 is never
    routed to (uniform over all members when omitted).
    """
    nc = n_classes if task == "classification" else None
    counted = outputs if outputs else [np.zeros(0)] * len(rkmes)  # without labels, members are only counted
    if method == "best_single":
        model = BestSingle(task=task, n_classes=nc)
        scores = -mmd2 if mmd2 is not None else prior
        return model.fit(outputs, y) if y is not None else model.fit(counted, scores=scores)
    if method == "weighted_ensemble":
        model = WeightedEnsemble(task=task, n_classes=nc)
        return model.fit(outputs, y) if y is not None else model.fit(counted, weights=prior)
    if method == "rkme_job_selector":
        return _router(task, nc, rkmes, gamma, route_weights)
    if y is None or Xs is None:
        raise ValueError(f"{method} needs a labelled sample")
    if method == "trained_job_selector":
        # The zero-shot router's log-responsibilities are features: labels correct its routing.
        return TrainedJobSelector(task=task, n_classes=nc).fit(Xs, outputs, y,
                                                               router=_router(task, nc, rkmes, gamma, route_weights))
    if method == "stitching_head":
        return StitchingHead(task=task, hidden=0, random_state=seed).fit([Xs, *outputs], y)
    raise ValueError(f"unknown method {method!r}")


def _router(task: str, n_classes: int | None, rkmes: list[tuple[np.ndarray, np.ndarray]], gamma: float,
            weights: np.ndarray | None) -> RKMEJobSelector:
    """Uniform weights (over the routed members) and a narrower kernel: see ROUTE_GAMMA_FACTOR."""
    return RKMEJobSelector(task=task, n_classes=n_classes).fit([z for z, _ in rkmes], [b for _, b in rkmes],
                                                               gamma * ROUTE_GAMMA_FACTOR, weights)


def predict_method(assembly: Assembly, *, task: str, n_classes: int | None, outputs: list[np.ndarray],
                   Xs: np.ndarray) -> np.ndarray:
    """(n, C) class probabilities for classification, (n,) predictions for regression."""
    a: Any = assembly
    if assembly.kind in ("best_single", "weighted_ensemble"):
        return a.predict_proba(outputs) if task == "classification" else a.predict(outputs)
    if assembly.kind in ("rkme_job_selector", "trained_job_selector"):
        return a.predict_proba(outputs, Xs) if task == "classification" else a.predict(outputs, Xs)
    if assembly.kind == "stitching_head":
        blocks = [Xs, *outputs]
        if task != "classification":
            return a.predict(blocks)
        assert n_classes is not None
        full = np.zeros((Xs.shape[0], n_classes))
        full[:, a.classes_.astype(np.int64)] = a.predict_proba(blocks)
        return full
    raise ValueError(f"unknown assembly kind {assembly.kind!r}")


def score(task: str, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """accuracy for classification; r2 and rmse for regression (higher r2 is better)."""
    if task == "classification":
        return {"accuracy": float(np.mean(prediction.argmax(axis=1) == y))}
    residual = prediction - y
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else float("nan")
    return {"r2": r2, "rmse": float(np.sqrt(np.mean(residual**2)))}


def primary(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"
