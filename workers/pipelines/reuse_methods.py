"""The assembly methods as the pipeline (and a package's predictor) use them: fit and predict
on member outputs in the task's class order, with the user's rows in space coordinates.

Shapes: ``outputs`` is one array per member, (n, C) probabilities over the task's C
classes for classification or (n,) predictions for regression; ``Xs`` (n, d) are the rows
mapped by the space transform; ``y`` (n,) are class indices or targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from specs.assembly import (
    Assembly,
    BestSingle,
    RKMEJobSelector,
    RKMESoftSelector,
    StitchingHead,
    TrainedJobSelector,
    WeightedEnsemble,
)
from specs.assembly.route_bandwidth import choose_route_gamma_factor, choose_soft_route_gamma_factor
from specs.recipe import predict_assembly

LABELLED_METHODS = (
    "best_single",
    "weighted_ensemble",
    "rkme_job_selector",
    "trained_job_selector",
    "stitching_head",
)
ZERO_SHOT_METHODS = ("best_single", "weighted_ensemble", "rkme_job_selector", "rkme_soft_selector")
# The router's kernel is a per-task multiple of the space's gamma, chosen from the members' own RKME
# points without labels (specs.assembly.route_bandwidth: 16x unless another factor routes them
# home better beyond noise). Measured on the digits market (docs/submissions.md): routing accuracy
# over 20 two-domain users, mean / worst, was 0.92 / 0.64 at 1x gamma, 0.96 / 0.77 at 4x, 0.97 / 0.84
# at 16x with uniform weights, and mixture weights as priors made it worse at every bandwidth.
# The soft router's kernel is the factor whose responsibilities are best calibrated on the members'
# own points (leave-one-out log-likelihood, specs.assembly.route_bandwidth).
MULTI_MEMBER = {"weighted_ensemble", "rkme_job_selector", "rkme_soft_selector", "trained_job_selector"}


def applicable(methods: Sequence[str], n_members: int, allowed: Sequence[str] | None) -> list[str]:
    """Methods that make sense for this many members and that the user allows."""
    out = [m for m in methods if n_members >= 2 or m not in MULTI_MEMBER]
    return [m for m in out if not allowed or m in allowed]


@dataclass(frozen=True)
class FitInputs:
    """What a method is fitted on (see the module docstring for the shapes).

    ``prior`` (m,) are the identification weights (mixture weights, or one-hot on the best
    single) and ``mmd2`` (m,) each member's MMD^2 to the user's data: zero-shot methods
    use them where labels would otherwise decide (``outputs`` may then be empty).
    ``route_weights`` (m,) restrict the RKME job selector: a member of weight 0 is never
    routed to (uniform over all members when omitted). Without ``y`` (and ``Xs``) only the
    zero-shot methods are defined.
    """

    task: str
    n_classes: int | None
    rkmes: list[tuple[np.ndarray, np.ndarray]]  # each member's (Z, beta)
    gamma: float
    prior: np.ndarray
    seed: int
    mmd2: np.ndarray | None = None
    route_weights: np.ndarray | None = None
    outputs: list[np.ndarray] = field(default_factory=list)
    Xs: np.ndarray | None = None
    y: np.ndarray | None = None

    def labelled(self, outputs: list[np.ndarray], Xs: np.ndarray, y: np.ndarray) -> FitInputs:
        """The same members and weights with labelled rows to fit on."""
        return replace(self, outputs=outputs, Xs=Xs, y=y)

    def rows(self, index: np.ndarray) -> FitInputs:
        """The labelled rows ``index`` only (a cross-validation fold's training rows)."""
        assert self.Xs is not None and self.y is not None
        return replace(self, outputs=[o[index] for o in self.outputs], Xs=self.Xs[index], y=self.y[index])


def fit_method(method: str, inputs: FitInputs) -> Assembly:
    """Fit one method on ``inputs``; without labels only the zero-shot ones are defined."""
    task, y, Xs, outputs, rkmes = inputs.task, inputs.y, inputs.Xs, inputs.outputs, inputs.rkmes
    nc = inputs.n_classes if task == "classification" else None
    counted = outputs if outputs else [np.zeros(0)] * len(rkmes)  # without labels, members are only counted
    if method == "best_single":
        single = BestSingle(task=task, n_classes=nc)
        scores = -inputs.mmd2 if inputs.mmd2 is not None else inputs.prior
        return single.fit(outputs, y) if y is not None else single.fit(counted, scores=scores)
    if method == "weighted_ensemble":
        ensemble = WeightedEnsemble(task=task, n_classes=nc)
        return ensemble.fit(outputs, y) if y is not None else ensemble.fit(counted, weights=inputs.prior)
    if method == "rkme_job_selector":
        return _router(task, nc, rkmes, inputs.gamma, inputs.route_weights)
    if method == "rkme_soft_selector":
        return _router(task, nc, rkmes, inputs.gamma, inputs.route_weights, soft=True)
    if y is None or Xs is None:
        raise ValueError(f"{method} needs a labelled sample")
    if method == "trained_job_selector":
        # The zero-shot router's log-responsibilities are features: labels correct its routing.
        return TrainedJobSelector(task=task, n_classes=nc).fit(
            Xs, outputs, y, router=_router(task, nc, rkmes, inputs.gamma, inputs.route_weights)
        )
    if method == "stitching_head":
        return StitchingHead(task=task, hidden=0, random_state=inputs.seed).fit([Xs, *outputs], y)
    raise ValueError(f"unknown method {method!r}")


def _router(
    task: str,
    n_classes: int | None,
    rkmes: list[tuple[np.ndarray, np.ndarray]],
    gamma: float,
    weights: np.ndarray | None,
    *,
    soft: bool = False,
) -> RKMEJobSelector:
    """Uniform weights (over the routed members) and a kernel chosen per task on the members' own
    points (see above): the best self-routing for the job selector, the best calibrated
    responsibilities for the soft selector (``soft``)."""
    Zs, betas = [z for z, _ in rkmes], [b for _, b in rkmes]
    choose, kind = (
        (choose_soft_route_gamma_factor, RKMESoftSelector)
        if soft
        else (choose_route_gamma_factor, RKMEJobSelector)
    )
    factor = choose(Zs, betas, gamma, weights).factor
    return kind(task=task, n_classes=n_classes).fit(Zs, betas, gamma * factor, weights)


def predict_method(
    assembly: Assembly, *, task: str, n_classes: int | None, outputs: list[np.ndarray], Xs: np.ndarray
) -> np.ndarray:
    """(n, C) class probabilities for classification, (n,) predictions for regression
    (``specs.recipe.predict_assembly``: what a package's predictor runs)."""
    return predict_assembly(assembly, task=task, n_classes=n_classes, outputs=outputs, Xs=Xs)


def score(
    task: str, y: np.ndarray, prediction: np.ndarray, reference: np.ndarray | None = None
) -> dict[str, float]:
    """accuracy for classification; r2 and rmse for regression (higher r2 is better).

    A test fold whose targets are all one value (ties: ratings, counts) has no spread of its own, so
    its R² would be NaN; with ``reference`` (every labelled target) its errors are measured against
    the sample's spread instead -- on that fold, the same for every candidate, so comparisons stay paired."""
    if task == "classification":
        return {"accuracy": float(np.mean(prediction.argmax(axis=1) == y))}
    residual = prediction - y
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0 and reference is not None:
        total = float(np.var(reference)) * y.shape[0]
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else float("nan")
    return {"r2": r2, "rmse": float(np.sqrt(np.mean(residual**2)))}


def primary(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"
