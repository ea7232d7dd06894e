"""Stage ``assemble``: fit every applicable method on the fit rows, choose by validation score.

Without labels only the zero-shot methods are fitted (best single by MMD, the mixture-
weighted ensemble, the RKME job selector) and the choice follows identification: the job
selector when a mixture was proposed, else the best single learnware.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.submissions.choices import METHOD_ORDER
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_identify import DEFAULT_MAX_MODULES
from workers.pipelines.reuse_members import Member, to_task_classes
from workers.pipelines.reuse_rank import candidate_ids, context_members, task_classes

MEANING = {
    "best_single": "the one learnware with the lowest loss on your fit rows (or the best MMD without labels)",
    "weighted_ensemble": "average of the learnwares' outputs, weighted by their skill on your rows (or the mixture weights)",
    "rkme_job_selector": "each row goes to the learnware whose RKME gives it the highest weighted density (no training)",
    "trained_job_selector": "each row goes to the learnware a logistic regression on your rows predicts to be best for it",
    "stitching_head": "a linear head trained on your rows over the features and every learnware's outputs",
}


def member_ids(ctx: ReuseContext) -> list[int]:
    """Up to ``max_modules`` members: the ranking's top (with labels) or the mixture / best single."""
    limit = int(ctx.requirements.get("max_modules", DEFAULT_MAX_MODULES))
    rank = ctx.results["rank"]
    mixture = ctx.results["identify"]["mixture"]
    if not rank["skipped"]:
        return [c["version_id"] for c in rank["candidates"]][:limit]
    if mixture["proposed"]:
        return [c["version_id"] for c in mixture["components"]][:limit]
    return candidate_ids(ctx)[:1]


def prior_weights(ctx: ReuseContext, ids: list[int]) -> np.ndarray:
    """Mixture weights of the members (renormalised); one-hot on the best MMD when there is no mixture."""
    mixture = ctx.results["identify"]["mixture"]
    if mixture["proposed"]:
        w = {c["version_id"]: c["weight"] for c in mixture["components"]}
        prior = np.array([w.get(i, 0.0) for i in ids])
        if prior.sum() > 0:
            return prior / prior.sum()
    mmd = {s["version_id"]: s["mmd2"] for s in ctx.results["identify"]["singles"]}
    return np.eye(len(ids))[int(np.argmin([mmd.get(i, np.inf) for i in ids]))]


def task_outputs(ctx: ReuseContext, members: list[Member], X: np.ndarray, classes: list[str]) -> list[np.ndarray]:
    """Each member's outputs on X in the task's terms: (n, C) probabilities or (n,) predictions."""
    _, cache = context_members(ctx, [m.version_id for m in members])
    out = []
    for m in members:
        raw = cache.raw(m, X)
        out.append(to_task_classes(raw, m, classes) if ctx.submission.task == "classification" else raw.reshape(raw.shape[0], -1)[:, 0])
    return out


def labelled_codes(ctx: ReuseContext, classes: list[str]) -> np.ndarray:
    table = ctx.labelled_table
    assert table is not None and table.y is not None
    if ctx.submission.task != "classification":
        return table.y.astype(np.float64)
    position = {c: i for i, c in enumerate(classes)}
    return np.array([position[str(v)] for v in table.y], dtype=np.int64)


def _fit_all(ctx: ReuseContext, names: list[str], members: list[Member], classes: list[str], prior: np.ndarray,
             report: Report) -> list[dict[str, Any]]:
    task, nc = ctx.submission.task, len(classes)
    labelled = ctx.labelled_table is not None
    if labelled:
        assert ctx.labelled_table is not None
        X = ctx.labelled_table.X
        outputs, Xs, y = task_outputs(ctx, members, X, classes), ctx.transform(X), labelled_codes(ctx, classes)
        fit, val = ctx.splits["fit"], ctx.splits["val"]
    rows = []
    for i, name in enumerate(names):
        report("assemble", i, len(names), f"fitting {name}")
        common = {"task": task, "n_classes": nc, "rkmes": [(m.Z, m.beta) for m in members], "gamma": ctx.space.gamma,
                  "prior": prior, "seed": ctx.seed, "mmd2": _mmd2(ctx, members)}
        if labelled:
            model = methods.fit_method(name, outputs=[o[fit] for o in outputs], Xs=Xs[fit], y=y[fit], **common)
            prediction = methods.predict_method(model, task=task, n_classes=nc, outputs=[o[val] for o in outputs], Xs=Xs[val])
            validation: dict[str, float] | None = methods.score(task, y[val], prediction)
        else:
            model = methods.fit_method(name, outputs=[], Xs=None, y=None, **common)
            validation = None
        stored = ctx.work_save(f"assembly-{name}.lwa", model.to_bytes())
        rows.append({"method": name, "validation": validation, "artifact": stored, "meaning": MEANING[name],
                     "parameters": _parameters(model)})
    return rows


def _mmd2(ctx: ReuseContext, members: list[Member]) -> np.ndarray:
    mmd = {s["version_id"]: s["mmd2"] for s in ctx.results["identify"]["singles"]}
    return np.array([mmd.get(m.version_id, np.inf) for m in members])


def _parameters(model: Any) -> dict[str, Any]:
    """What a reader needs to see of a fitted method: its weights or routing share."""
    if hasattr(model, "weights_"):
        return {"weights": [round(float(w), 6) for w in model.weights_]}
    if hasattr(model, "params_"):
        return {"n_epochs": int(model.n_epochs_), "inputs": int(model.mean_.shape[0])}
    return {}


def _choose(ctx: ReuseContext, rows: list[dict[str, Any]], n_members: int) -> tuple[str, str]:
    metric = methods.primary(ctx.submission.task)
    if ctx.labelled_table is None:
        names = {r["method"] for r in rows}
        if ctx.results["identify"]["mixture"]["proposed"] and "rkme_job_selector" in names:
            return "rkme_job_selector", "no labels: a mixture was identified, so rows are routed by the members' RKMEs"
        return rows[0]["method"], "no labels: the best single learnware by MMD (no mixture was significant)"
    best = max(rows, key=lambda r: (r["validation"][metric], -METHOD_ORDER.index(r["method"])))
    return best["method"], (f"highest validation {metric} ({best['validation'][metric]:.4g} on "
                            f"{len(ctx.splits['val'])} rows); ties go to the simpler method")


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Fit the applicable assembly methods and choose one."""
    ids = member_ids(ctx)
    members, _ = context_members(ctx, ids)
    classes = ctx.results["rank"].get("classes") or task_classes(ctx, members)
    labelled = ctx.labelled_table is not None
    names = methods.applicable(methods.LABELLED_METHODS if labelled else methods.ZERO_SHOT_METHODS, len(members),
                               ctx.requirements.get("methods"))
    if not names:
        names = ["best_single"]  # the user's allow-list left nothing applicable: fall back to the simplest
    prior = prior_weights(ctx, ids)
    rows = _fit_all(ctx, names, members, classes, prior, report)
    chosen, reason = _choose(ctx, rows, len(members))
    return {"members": [{**m.card(), "prior_weight": float(p)} for m, p in zip(members, prior, strict=True)],
            "classes": classes if ctx.submission.task == "classification" else None,
            "split": {k: int(v.shape[0]) for k, v in ctx.splits.items()} if labelled else None,
            "methods": rows, "chosen": chosen, "reason": reason}
