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

from typing import Any

import numpy as np

from specs.evaluation import Folds, metric_bounds, one_se_choice, repeated_folds, score_interval
from specs.exceptions import SpecError
from specs.units import units_summary
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext, SpaceTransform
from workers.pipelines.reuse_identify import DEFAULT_MAX_MODULES
from workers.pipelines.reuse_members import Member, to_task_classes
from workers.pipelines.reuse_rank import candidate_ids, context_members, task_classes

CV_FOLDS, CV_REPEATS = 5, 4
LABEL_FREE = "label_free"
MEANING = {
    LABEL_FREE: "what this submission delivers without labels (routing over a found mixture, else the best single "
                "learnware by MMD), scored on your labelled rows",
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
        ids = [c["version_id"] for c in rank["candidates"]][:limit]
        # The label-free choice is a candidate with labels too: its members (the mixture, else the
        # best MMD) stay in the assembly even when the labelled ranking put them lower.
        free = [c["version_id"] for c in mixture["components"]] if mixture["proposed"] else candidate_ids(ctx)[:1]
        return ids + [i for i in free if i not in ids]
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


def route_weights(ctx: ReuseContext, members: list[Member]) -> np.ndarray | None:
    """1 for the mixture's components, 0 for the other members; None (uniform) without a mixture."""
    mixture = ctx.results["identify"]["mixture"]
    if not mixture["proposed"]:
        return None
    inside = {c["version_id"] for c in mixture["components"]}
    w = np.array([1.0 if m.version_id in inside else 0.0 for m in members])
    return w if w.sum() > 0 else None


def label_free_method(ctx: ReuseContext, n_members: int) -> str:
    """What the submission would deliver without labels: routing over a proposed mixture, else
    the best single learnware by MMD. With labels it stays a candidate (see :func:`_choose`)."""
    if ctx.results["identify"]["mixture"]["proposed"] and n_members >= 2:
        return "rkme_job_selector"
    return "best_single"


def labels_usable(ctx: ReuseContext) -> tuple[bool, str]:
    """Whether the labelled methods can be fitted at all, and why not."""
    labelled = ctx.results["spec"].get("labelled") or {}
    if ctx.submission.task == "classification" and labelled.get("single_class"):
        return False, (f"your labelled rows hold a single class {labelled.get('classes')}: no method can learn from them, "
                       "so the label-free package is delivered and the labels only measure it")
    return True, ""


def fold_scores(name: str, folds: Folds, outputs: list[np.ndarray], Xs: np.ndarray, y: np.ndarray,
                common: dict[str, Any]) -> list[float]:
    """The method's score on each test fold, fitted on that fold's training rows.

    Raises the method's own error (``SpecError``, ``ValueError``) when a fold cannot be fitted,
    e.g. a stitching head on training rows of a single class."""
    task, nc = common["task"], common["n_classes"]
    metric, out = methods.primary(task), []
    for train, test in folds.splits:
        model = methods.fit_method(name, outputs=[o[train] for o in outputs], Xs=Xs[train], y=y[train], **common)
        pred = methods.predict_method(model, task=task, n_classes=nc, outputs=[o[test] for o in outputs], Xs=Xs[test])
        out.append(methods.score(task, y[test], pred)[metric])
    return out


def fixed_fold_scores(model: Any, folds: Folds, outputs: list[np.ndarray], Xs: np.ndarray, y: np.ndarray,
                      task: str, nc: int | None) -> list[float]:
    """Scores on each test fold of a model that labels do not change (the label-free choice)."""
    pred = methods.predict_method(model, task=task, n_classes=nc, outputs=outputs, Xs=Xs)
    metric = methods.primary(task)
    return [methods.score(task, y[test], pred[test])[metric] for _, test in folds.splits]


def validation_summary(per_fold: list[float], folds: Folds, metric: str) -> dict[str, Any]:
    interval = score_interval(per_fold, folds.test_share, bounds=metric_bounds(metric))
    return {metric: interval["mean"], "ci95": interval["ci95"], "folds": folds.k, "repeats": folds.repeats,
            "rows": folds.n, "per_fold": [float(v) for v in per_fold]}


def cv_folds(ctx: ReuseContext, y: np.ndarray) -> Folds:
    return repeated_folds(y, stratify=ctx.submission.task == "classification", k=CV_FOLDS, repeats=CV_REPEATS, seed=ctx.seed)


def _fit_all(ctx: ReuseContext, names: list[str], members: list[Member], classes: list[str], prior: np.ndarray,
             report: Report) -> list[dict[str, Any]]:
    """The label-free choice first (row ``label_free``), then every labelled method when labels can
    be used: each scored on the same repeated folds of all labelled rows and refitted on all of them.
    A method that cannot be fitted is kept as a row with ``skipped`` (the reason), never fatal."""
    task, nc = ctx.submission.task, len(classes)
    usable, _ = labels_usable(ctx)
    labelled = ctx.labelled_table is not None and usable
    common = {"task": task, "n_classes": nc, "rkmes": [(m.Z, m.beta) for m in members], "gamma": ctx.space.gamma,
              "prior": prior, "seed": ctx.seed, "mmd2": _mmd2(ctx, members), "route_weights": route_weights(ctx, members)}
    rows = []
    if not labelled:
        for i, name in enumerate(names):
            report("assemble", i, len(names), f"fitting {name}")
            model = methods.fit_method(name, outputs=[], Xs=None, y=None, **common)
            stored = ctx.work_save(f"assembly-{name}.lwa", model.to_bytes())
            rows.append({"method": name, "validation": None, "artifact": stored, "meaning": MEANING[name],
                         "parameters": _parameters(model)})
        return rows
    assert ctx.labelled_table is not None
    X = ctx.labelled_table.X
    outputs, Xs, y = task_outputs(ctx, members, X, classes), ctx.transform(X), labelled_codes(ctx, classes)
    folds, metric = cv_folds(ctx, y), methods.primary(task)
    free = label_free_method(ctx, len(members))
    model = methods.fit_method(free, outputs=[], Xs=None, y=None, **common)
    stored = ctx.work_save("assembly-label_free.lwa", model.to_bytes())
    rows.append({"method": LABEL_FREE, "assembly_kind": free, "artifact": stored, "meaning": MEANING[LABEL_FREE],
                 "parameters": _parameters(model),
                 "validation": validation_summary(fixed_fold_scores(model, folds, outputs, Xs, y, task, nc), folds, metric)})
    for i, name in enumerate(names):
        report("assemble", i, len(names), f"fitting {name}")
        try:
            per_fold = fold_scores(name, folds, outputs, Xs, y, common)
            model = methods.fit_method(name, outputs=outputs, Xs=Xs, y=y, **common)  # refit on every labelled row
        except (SpecError, ValueError, np.linalg.LinAlgError) as exc:
            rows.append({"method": name, "skipped": f"cannot be fitted on your labelled rows: {exc}",
                         "meaning": MEANING[name], "validation": None})
            continue
        stored = ctx.work_save(f"assembly-{name}.lwa", model.to_bytes())
        rows.append({"method": name, "assembly_kind": name, "validation": validation_summary(per_fold, folds, metric),
                     "artifact": stored, "meaning": MEANING[name], "parameters": _parameters(model)})
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


def deliverable(ctx: ReuseContext, fitted: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(default, names) of the fitted rows that may be delivered: every one, unless the user's
    ``methods`` allow-list excludes some kinds; the default is the label-free choice when
    allowed, else the allowed method with the highest mean cross-validated score."""
    allowed = ctx.requirements.get("methods")
    names = [r["method"] for r in fitted if not allowed or r.get("assembly_kind", r["method"]) in allowed]
    if LABEL_FREE in names or not names:
        return LABEL_FREE, names or [LABEL_FREE]
    best = max((r for r in fitted if r["method"] in names), key=lambda r: float(np.mean(r["validation"]["per_fold"])))
    return best["method"], names


def _choose(ctx: ReuseContext, rows: list[dict[str, Any]], n_members: int) -> tuple[str, str]:
    metric = methods.primary(ctx.submission.task)
    fitted = [r for r in rows if not r.get("skipped")]
    if fitted[0]["method"] == LABEL_FREE:
        cv = fitted[0]["validation"]
        default, eligible = deliverable(ctx, fitted)
        scores = {r["method"]: r["validation"]["per_fold"] for r in fitted if r["method"] in eligible}
        chosen, gains = one_se_choice(default, scores, 1.0 / (cv["folds"] - 1))
        where = f"{cv['repeats']} x {cv['folds']}-fold cross-validation on your {cv['rows']} labelled rows"
        if default != LABEL_FREE and chosen == default:
            return chosen, (f"the label-free choice ({fitted[0]['assembly_kind']}) is not among the methods you allow: "
                            f"{chosen} has the highest mean {metric} of them in {where}")
        if chosen == LABEL_FREE:
            return chosen, (f"the label-free choice ({fitted[0]['assembly_kind']}, {metric} {cv[metric]:.4g} in {where}) is kept: "
                            "no labelled method's gain over it exceeded its standard error")
        g = gains[chosen]
        return chosen, (f"{chosen} gains {g['gain']:+.4g} {metric} over the label-free choice (standard error {g['se']:.2g}) "
                        f"in {where}, so it replaces it; refitted on all labelled rows")
    _, why = labels_usable(ctx)
    names = {r["method"] for r in fitted}
    if ctx.results["identify"]["mixture"]["proposed"] and "rkme_job_selector" in names:
        return "rkme_job_selector", (why or "no labels") + ": a mixture was identified, so rows are routed by the members' RKMEs"
    return fitted[0]["method"], (why or "no labels") + ": the best single learnware by MMD (no mixture was significant)"


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Fit the applicable assembly methods and choose one."""
    ids = member_ids(ctx)
    members, _ = context_members(ctx, ids)
    classes = ctx.results["rank"].get("classes") or task_classes(ctx, members)
    labelled = ctx.labelled_table is not None
    usable, _ = labels_usable(ctx)
    names = methods.applicable(methods.LABELLED_METHODS if labelled and usable else methods.ZERO_SHOT_METHODS, len(members),
                               ctx.requirements.get("methods"))
    if not names:
        names = ["best_single"]  # the user's allow-list left nothing applicable: fall back to the simplest
    prior = prior_weights(ctx, ids)
    rows = _fit_all(ctx, names, members, classes, prior, report)
    units = members_units(ctx, members)
    chosen, reason = _choose(ctx, rows, len(members))
    return {"members": [{**m.card(), "prior_weight": float(p)} for m, p in zip(members, prior, strict=True)],
            "classes": classes if ctx.submission.task == "classification" else None,
            "labels_used": bool(labelled and usable),
            "methods": rows, "chosen": chosen, "reason": reason, "units": units}


def members_units(ctx: ReuseContext, members: list[Member]) -> list[dict[str, Any]]:
    """Per member: whether the user's columns are in its units, and if not which ones and by how much."""
    if not isinstance(ctx.transform, SpaceTransform) or not ctx.transform.unit_free:
        return []  # images and texts are encoded: no units to convert
    _, cache = context_members(ctx, [m.version_id for m in members])
    columns = [c["name"] if isinstance(c, dict) else str(c) for c in (ctx.space.schema or {}).get("columns") or []] or None
    out = []
    for m in members:
        scale = cache.scale(m)
        card = {"version_id": m.version_id, "name": m.name, "version": m.number}
        if scale is None:
            why = ("your rows' units are unknown (an RKME without unit_rms or labelled rows): they are used as they are"
                   if ctx.user_rms is None else
                   "this learnware was published without its units (or none of the identified ones was): "
                   "it gets your rows as they are")
            out.append({**card, "known": False, "explanation": why})
            continue
        summary = units_summary(scale, columns)
        text = (f"{summary['columns_differing']} of {summary['columns']} columns are in other units than this learnware's "
                f"(up to x{summary['max_factor']:.3g}); your rows are converted before it runs" if summary["differ"]
                else "your columns are in this learnware's units")
        out.append({**card, "known": True, **summary, "explanation": text})
    return out
