"""Stage ``assemble``: choose a method by cross-validation on the training rows, refit it there.

With labels, every applicable method is scored by repeated (stratified) k-fold
cross-validation on the training rows (the labelled sample less the held-out test rows),
then refitted on all of them; the evaluate stage tests the refitted methods on the test
rows, which no method has seen. One validation split of a small sample (14 rows of 80)
tied and mis-ordered methods whose accuracy on the user's data differed by 0.13; pooled
out-of-fold predictions over 3 x 5 folds use every training row 3 times.

The RKME job selector is the label-free choice; with labels it routes over the same
members as without (the mixture's components when a mixture was proposed, weight 0 for the
ranking's other members), so the labelled path always has the zero-shot winner to choose.

Without labels only the zero-shot methods are fitted (best single by MMD, the mixture-
weighted ensemble, the RKME job selector) and the choice follows identification: the job
selector when a mixture was proposed, else the best single learnware.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from marketplace.submissions.choices import METHOD_ORDER
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_identify import DEFAULT_MAX_MODULES
from workers.pipelines.reuse_members import Member, to_task_classes
from workers.pipelines.reuse_rank import candidate_ids, context_members, task_classes

CV_FOLDS, CV_REPEATS = 5, 3
MEANING = {
    "best_single": "the one learnware with the lowest loss on your fit rows (or the best MMD without labels)",
    "weighted_ensemble": "average of the learnwares' outputs, weighted by their skill on your rows (or the mixture weights)",
    "rkme_job_selector": "each row goes to the learnware whose RKME gives it the highest weighted density (no training)",
    "trained_job_selector": "each row goes to the learnware a logistic regression on your rows (features and the RKME "
                            "routing's log-responsibilities) predicts to be best for it",
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


def training_rows(ctx: ReuseContext) -> np.ndarray:
    """Every labelled row that is not held out for the test (the split's fit and validation rows)."""
    return np.sort(np.concatenate([ctx.splits["fit"], ctx.splits["val"]]))


def cv_folds(task: str, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated k-fold (stratified for classification) over n rows; [(train idx, test idx)].

    k is at most CV_FOLDS, and for classification at most the largest class count (a
    stratified split needs that); a class rarer than k only appears in some test folds.
    """
    n = y.shape[0]
    if task == "classification":
        k = max(2, min(CV_FOLDS, int(np.bincount(y).max()), n))
        splitter: Any = RepeatedStratifiedKFold(n_splits=k, n_repeats=CV_REPEATS, random_state=seed)
    else:
        splitter = RepeatedKFold(n_splits=max(2, min(CV_FOLDS, n)), n_repeats=CV_REPEATS, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only m members"
        return list(splitter.split(np.zeros((n, 1)), y))


def route_weights(ctx: ReuseContext, members: list[Member]) -> np.ndarray | None:
    """1 for the mixture's components, 0 for the other members; None (uniform) without a mixture."""
    mixture = ctx.results["identify"]["mixture"]
    if not mixture["proposed"]:
        return None
    inside = {c["version_id"] for c in mixture["components"]}
    w = np.array([1.0 if m.version_id in inside else 0.0 for m in members])
    return w if w.sum() > 0 else None


def cross_validate(name: str, folds: list[tuple[np.ndarray, np.ndarray]], outputs: list[np.ndarray],
                   Xs: np.ndarray, y: np.ndarray, common: dict[str, Any]) -> dict[str, Any]:
    """Score of the method's pooled out-of-fold predictions, per repeat and their mean."""
    task, nc = common["task"], common["n_classes"]
    metric = methods.primary(task)
    per_repeat, k = [], len(folds) // CV_REPEATS
    for r in range(CV_REPEATS):
        pooled = np.zeros((y.shape[0], nc) if task == "classification" else y.shape[0])
        for train, test in folds[r * k : (r + 1) * k]:
            model = methods.fit_method(name, outputs=[o[train] for o in outputs], Xs=Xs[train], y=y[train], **common)
            pooled[test] = methods.predict_method(model, task=task, n_classes=nc, outputs=[o[test] for o in outputs],
                                                  Xs=Xs[test])
        per_repeat.append(methods.score(task, y, pooled))
    mean = {key: float(np.mean([s[key] for s in per_repeat])) for key in per_repeat[0]}
    return {**mean, "folds": k, "repeats": CV_REPEATS, "rows": int(y.shape[0]),
            "per_repeat": [round(s[metric], 6) for s in per_repeat]}


def _fit_all(ctx: ReuseContext, names: list[str], members: list[Member], classes: list[str], prior: np.ndarray,
             report: Report) -> list[dict[str, Any]]:
    task, nc = ctx.submission.task, len(classes)
    labelled = ctx.labelled_table is not None
    common = {"task": task, "n_classes": nc, "rkmes": [(m.Z, m.beta) for m in members], "gamma": ctx.space.gamma,
              "prior": prior, "seed": ctx.seed, "mmd2": _mmd2(ctx, members), "route_weights": route_weights(ctx, members)}
    if labelled:
        assert ctx.labelled_table is not None
        train = training_rows(ctx)
        X = ctx.labelled_table.X  # members run on every labelled row once (evaluate reuses the cached outputs)
        outputs = [o[train] for o in task_outputs(ctx, members, X, classes)]
        Xs, y = ctx.transform(X[train]), labelled_codes(ctx, classes)[train]
        folds = cv_folds(task, y, ctx.seed)
    rows = []
    for i, name in enumerate(names):
        report("assemble", i, len(names), f"fitting {name}")
        if labelled:
            validation: dict[str, Any] | None = cross_validate(name, folds, outputs, Xs, y, common)
            model = methods.fit_method(name, outputs=outputs, Xs=Xs, y=y, **common)  # refit on every training row
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
    cv = best["validation"]
    return best["method"], (f"highest cross-validated {metric} ({cv[metric]:.4g}: {cv['repeats']} x {cv['folds']}-fold "
                            f"on the {cv['rows']} training rows), then refitted on all of them; ties go to the simpler method")


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
            "split": {"train": int(training_rows(ctx).shape[0]), "test": int(ctx.splits["test"].shape[0])} if labelled else None,
            "methods": rows, "chosen": chosen, "reason": reason}
