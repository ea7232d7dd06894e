"""Stage ``assemble``: choose a method by cross-validation on the training rows, refit it there.

With labels, every applicable method is scored by repeated (stratified) k-fold
cross-validation on the training rows (the labelled sample less the held-out test rows),
then refitted on all of them; the evaluate stage tests the refitted methods on the test
rows, which no method has seen. One validation split of a small sample (14 rows of 80)
tied and mis-ordered methods whose accuracy on the user's data differed by 0.13; pooled
out-of-fold predictions over 3 x 5 folds use every training row 3 times.

The RKME soft selector is the label-free choice over a mixture; with labels the routers use the same
members as without (the mixture's components when a mixture was proposed, weight 0 for the
ranking's other members), so the labelled path always has the zero-shot winner to choose.

Without labels only the zero-shot methods are fitted (best single by MMD, the mixture-
weighted ensemble, the RKME job and soft selectors). Without a mixture the best single learnware
is delivered; with one, ``specs.assembly.label_free`` chooses soft routing (each row's outputs
weighted by its calibrated RKME responsibilities: routing where the members' data are apart,
averaging where they overlap), or the best single when the routing sends nearly every row to one
member or, for members on disjoint classes, contradicts the mixture weights. The same choice is
the labelled path's label-free candidate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.assembly import Assembly, RKMEJobSelector
from specs.assembly.label_free import LabelFreeChoice, label_free_choice
from specs.evaluation import Folds, metric_bounds, one_se_choice, score_interval
from specs.exceptions import SpecError
from specs.units import units_summary
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext, SpaceTransform
from workers.pipelines.reuse_members import Member
from workers.pipelines.reuse_methods import FitInputs
from workers.pipelines.reuse_results import AssembleResult, Json, RankSkipped
from workers.pipelines.reuse_shared import (
    LABEL_FREE,
    candidate_ids,
    context_members,
    cv_folds,
    deliverable,
    identified_mmd2,
    labelled_codes,
    labels_usable,
    max_modules,
    prior_weights,
    space_column_names,
    task_classes,
    task_outputs,
    user_rows,
)

MEANING = {
    LABEL_FREE: "what this submission delivers without labels (over a found mixture: soft routing, or the "
    "best single when the routing on your rows says one member is enough; else the best single learnware by "
    "MMD), scored on your labelled rows",
    "best_single": "the one learnware with the lowest loss on your fit rows (or the best MMD without labels)",
    "weighted_ensemble": "average of the learnwares' outputs, weighted by their skill on your rows (or the "
    "mixture weights)",
    "rkme_job_selector": "each row goes to the learnware whose RKME gives it the highest weighted density "
    "(no training)",
    "rkme_soft_selector": "each row's prediction averages the learnwares' outputs weighted by how well their "
    "RKMEs explain the row: one learnware where their data are apart, several where they overlap (no "
    "training)",
    "trained_job_selector": "each row goes to the learnware a logistic regression on your rows (features and "
    "the RKME routing's log-responsibilities) predicts to be best for it",
    "stitching_head": "a linear head trained on your rows over the features and every learnware's outputs",
}


def member_ids(ctx: ReuseContext) -> list[int]:
    """Up to ``max_modules`` members: the ranking's top (with labels) or the mixture / best single."""
    limit = max_modules(ctx)
    rank = ctx.rank_result
    mixture = ctx.identify_result.mixture
    if not isinstance(rank, RankSkipped):
        ids = [c["version_id"] for c in rank.candidates][:limit]
        # The label-free choice is a candidate with labels too: its members (the mixture, else the
        # best MMD) stay in the assembly even when the labelled ranking put them lower.
        free = (
            [c["version_id"] for c in mixture["components"]]
            if mixture["proposed"]
            else candidate_ids(ctx)[:1]
        )
        return ids + [i for i in free if i not in ids]
    if mixture["proposed"]:
        return [c["version_id"] for c in mixture["components"]][:limit]
    return candidate_ids(ctx)[:1]


def route_weights(ctx: ReuseContext, members: list[Member]) -> np.ndarray | None:
    """1 for the mixture's components, 0 for the other members; None (uniform) without a mixture."""
    mixture = ctx.identify_result.mixture
    if not mixture["proposed"]:
        return None
    inside = {c["version_id"] for c in mixture["components"]}
    w = np.array([1.0 if m.version_id in inside else 0.0 for m in members])
    return w if w.sum() > 0 else None


def label_free_method(ctx: ReuseContext, members: list[Member], n_classes: int | None) -> LabelFreeChoice:
    """What the submission would deliver without labels (``specs.assembly.label_free``): the best
    single learnware by MMD without a mixture; over a proposed mixture, soft routing unless the job
    selector's routes of the user's rows show one member is enough. With labels it stays a
    candidate (see :func:`_choose`)."""
    weights = route_weights(ctx, members)
    live = weights > 0 if weights is not None else None
    if not ctx.identify_result.mixture["proposed"] or live is None or int(live.sum()) < 2:
        return label_free_choice(None, n_members=1)
    rows = user_rows(ctx)
    if rows is None:
        return label_free_choice(None, n_members=int(live.sum()))
    router = methods.fit_method(
        "rkme_job_selector",
        FitInputs(
            task=ctx.submission.task,
            n_classes=n_classes,
            rkmes=[(m.Z, m.beta) for m in members],
            gamma=ctx.space.gamma,
            prior=prior_weights(ctx, [m.version_id for m in members]),
            seed=ctx.seed,
            route_weights=weights,
        ),
    )
    assert isinstance(router, RKMEJobSelector)
    mixture = prior_weights(ctx, [m.version_id for m in members])[live]  # only the components are routed to
    classes = (
        [m.classes for i, m in enumerate(members) if live[i]]
        if ctx.submission.task == "classification"
        else None
    )
    return label_free_choice(router.responsibilities(rows)[:, live], mixture, classes)


def fold_scores(name: str, folds: Folds, inputs: FitInputs) -> list[float]:
    """The method's score on each test fold, fitted on that fold's training rows of ``inputs``.

    Raises the method's own error (``SpecError``, ``ValueError``) when a fold cannot be fitted,
    e.g. a stitching head on training rows of a single class."""
    task, nc = inputs.task, inputs.n_classes
    assert inputs.Xs is not None and inputs.y is not None
    metric, out = methods.primary(task), []
    for train, test in folds.splits:
        model = methods.fit_method(name, inputs.rows(train))
        pred = methods.predict_method(
            model, task=task, n_classes=nc, outputs=[o[test] for o in inputs.outputs], Xs=inputs.Xs[test]
        )
        out.append(methods.score(task, inputs.y[test], pred, inputs.y)[metric])
    return out


def fixed_fold_scores(
    model: Assembly,
    folds: Folds,
    outputs: list[np.ndarray],
    Xs: np.ndarray,
    y: np.ndarray,
    task: str,
    nc: int | None,
) -> list[float]:
    """Scores on each test fold of a model that labels do not change (the label-free choice)."""
    pred = methods.predict_method(model, task=task, n_classes=nc, outputs=outputs, Xs=Xs)
    metric = methods.primary(task)
    return [methods.score(task, y[test], pred[test], y)[metric] for _, test in folds.splits]


def validation_summary(per_fold: list[float], folds: Folds, metric: str) -> dict[str, Any]:
    interval = score_interval(per_fold, folds.test_share, bounds=metric_bounds(metric))
    return {
        metric: interval["mean"],
        "ci95": interval["ci95"],
        "folds": folds.k,
        "repeats": folds.repeats,
        "rows": folds.n,
        "per_fold": [float(v) for v in per_fold],
    }


def _fit_all(
    ctx: ReuseContext,
    names: list[str],
    members: list[Member],
    classes: list[str],
    prior: np.ndarray,
    free: LabelFreeChoice,
    report: Report,
) -> list[Json]:
    """The label-free choice first (row ``label_free``), then every labelled method when labels can
    be used: each scored on the same repeated folds of all labelled rows and refitted on all of them.
    A method that cannot be fitted is kept as a row with ``skipped`` (the reason), never fatal."""
    task, nc = ctx.submission.task, len(classes)
    usable, _ = labels_usable(ctx)
    labelled = ctx.labelled_table is not None and usable
    zero_shot = FitInputs(
        task=task,
        n_classes=nc,
        rkmes=[(m.Z, m.beta) for m in members],
        gamma=ctx.space.gamma,
        prior=prior,
        seed=ctx.seed,
        mmd2=_mmd2(ctx, members),
        route_weights=route_weights(ctx, members),
    )
    rows: list[Json] = []
    if not labelled:
        for i, name in enumerate(names):
            report("assemble", i, len(names), f"fitting {name}")
            model = methods.fit_method(name, zero_shot)
            stored = ctx.work_save(f"assembly-{name}.lwa", model.to_bytes())
            rows.append(
                {
                    "method": name,
                    "validation": None,
                    "artifact": stored,
                    "meaning": MEANING[name],
                    "parameters": _parameters(model, ctx.space.gamma),
                }
            )
        return rows
    assert ctx.labelled_table is not None
    X = ctx.labelled_table.X
    outputs = task_outputs(ctx, members, X, classes, rows=np.arange(X.shape[0]))  # every labelled row
    Xs, y = ctx.transform(X), labelled_codes(ctx, classes)
    folds, metric = cv_folds(ctx, y), methods.primary(task)
    model = methods.fit_method(free.method, zero_shot)
    inputs = zero_shot.labelled(outputs, Xs, y)
    stored = ctx.work_save("assembly-label_free.lwa", model.to_bytes())
    rows.append(
        {
            "method": LABEL_FREE,
            "assembly_kind": free.method,
            "artifact": stored,
            "meaning": MEANING[LABEL_FREE],
            "parameters": _parameters(model, ctx.space.gamma),
            "validation": validation_summary(
                fixed_fold_scores(model, folds, outputs, Xs, y, task, nc), folds, metric
            ),
        }
    )
    for i, name in enumerate(names):
        report("assemble", i, len(names), f"fitting {name}")
        try:
            per_fold = fold_scores(name, folds, inputs)
            model = methods.fit_method(name, inputs)  # refit on every labelled row
        except (SpecError, ValueError, np.linalg.LinAlgError) as exc:
            rows.append(
                {
                    "method": name,
                    "skipped": f"cannot be fitted on your labelled rows: {exc}",
                    "meaning": MEANING[name],
                    "validation": None,
                }
            )
            continue
        stored = ctx.work_save(f"assembly-{name}.lwa", model.to_bytes())
        rows.append(
            {
                "method": name,
                "assembly_kind": name,
                "validation": validation_summary(per_fold, folds, metric),
                "artifact": stored,
                "meaning": MEANING[name],
                "parameters": _parameters(model, ctx.space.gamma),
            }
        )
    return rows


def _mmd2(ctx: ReuseContext, members: list[Member]) -> np.ndarray:
    mmd = identified_mmd2(ctx)
    return np.array([mmd.get(m.version_id, np.inf) for m in members])


def _parameters(model: Any, space_gamma: float) -> dict[str, Any]:
    """What a reader needs to see of a fitted method: its weights or routing share, and a router's
    kernel as a multiple of the space's gamma (``specs.assembly.route_bandwidth``)."""
    router = model if isinstance(model, RKMEJobSelector) else getattr(model, "router_", None)
    factor = {"gamma_factor": round(router.gamma_ / space_gamma, 6)} if router is not None else {}
    if hasattr(model, "weights_"):
        return {"weights": [round(float(w), 6) for w in model.weights_], **factor}
    if hasattr(model, "params_"):
        return {"n_epochs": int(model.n_epochs_), "inputs": int(model.mean_.shape[0])}
    return {}


def _choose(ctx: ReuseContext, rows: list[Json], free: LabelFreeChoice) -> tuple[str, str]:
    metric = methods.primary(ctx.submission.task)
    fitted = [r for r in rows if not r.get("skipped")]
    if fitted[0]["method"] == LABEL_FREE:
        cv = fitted[0]["validation"]
        default, eligible = deliverable(ctx, fitted)
        scores = {r["method"]: r["validation"]["per_fold"] for r in fitted if r["method"] in eligible}
        chosen, gains = one_se_choice(default, scores, 1.0 / (cv["folds"] - 1))
        where = f"{cv['repeats']} x {cv['folds']}-fold cross-validation on your {cv['rows']} labelled rows"
        if default != LABEL_FREE and chosen == default:
            return chosen, (
                f"the label-free choice ({fitted[0]['assembly_kind']}) is not among the methods you allow: "
                f"{chosen} has the highest mean {metric} of them in {where}"
            )
        if chosen == LABEL_FREE:
            return chosen, (
                f"the label-free choice ({fitted[0]['assembly_kind']}, {metric} {cv[metric]:.4g} in {where}) "
                "is kept: "
                "no labelled method's gain over it exceeded its standard error"
            )
        g = gains[chosen]
        return chosen, (
            f"{chosen} gains {g['gain']:+.4g} {metric} over the label-free choice (standard error "
            f"{g['se']:.2g}) "
            f"in {where}, so it replaces it; refitted on all labelled rows"
        )
    _, why = labels_usable(ctx)
    names = {r["method"] for r in fitted}
    if ctx.identify_result.mixture["proposed"] and free.method in names:
        return free.method, f"{why or 'no labels'}: a mixture was identified; {free.reason}"
    if not ctx.identify_result.mixture["proposed"]:
        return fitted[0]["method"], (
            why or "no labels"
        ) + ": the best single learnware by MMD (no mixture was significant)"
    return fitted[0]["method"], (
        f"{why or 'no labels'}: {free.method} is not among the methods you allow; "
        f"{fitted[0]['method']} is the first that is"
    )


def run(ctx: ReuseContext, report: Report) -> AssembleResult:
    """Fit the applicable assembly methods and choose one."""
    ids = member_ids(ctx)
    members, _ = context_members(ctx, ids)
    rank = ctx.rank_result
    classes = (None if isinstance(rank, RankSkipped) else rank.classes) or task_classes(ctx, members)
    labelled = ctx.labelled_table is not None
    usable, _ = labels_usable(ctx)
    names = methods.applicable(
        methods.LABELLED_METHODS if labelled and usable else methods.ZERO_SHOT_METHODS,
        len(members),
        ctx.requirements.get("methods"),
    )
    if not names:
        names = ["best_single"]  # the user's allow-list left nothing applicable: fall back to the simplest
    prior = prior_weights(ctx, ids)
    free = label_free_method(ctx, members, len(classes) if ctx.submission.task == "classification" else None)
    rows = _fit_all(ctx, names, members, classes, prior, free, report)
    units = members_units(ctx, members)
    chosen, reason = _choose(ctx, rows, free)
    return AssembleResult(
        members=[{**m.card(), "prior_weight": float(p)} for m, p in zip(members, prior, strict=True)],
        classes=classes if ctx.submission.task == "classification" else None,
        labels_used=bool(labelled and usable),
        methods=rows,
        chosen=chosen,
        reason=reason,
        units=units,
        label_free=free.as_dict(),
    )


def members_units(ctx: ReuseContext, members: list[Member]) -> list[Json]:
    """Per member: whether the user's columns are in its units, and if not which ones and by how much."""
    if not isinstance(ctx.transform, SpaceTransform) or not ctx.transform.unit_free:
        return []  # images and texts are encoded: no units to convert
    _, cache = context_members(ctx, [m.version_id for m in members])
    columns = space_column_names(ctx)
    out = []
    for m in members:
        scale = cache.scale(m)
        card = {"version_id": m.version_id, "name": m.name, "version": m.number}
        if scale is None:
            why = (
                "your rows' units are unknown (an RKME without unit_rms or labelled rows): they are used as "
                "they are"
                if ctx.user_rms is None
                else "this learnware was published without its units (or none of the identified ones was): "
                "it gets your rows as they are"
            )
            out.append({**card, "known": False, "explanation": why})
            continue
        summary = units_summary(scale, columns)
        text = (
            f"{summary['columns_differing']} of {summary['columns']} columns are in other units than this "
            "learnware's "
            f"(up to x{summary['max_factor']:.3g}); your rows are converted before it runs"
            if summary["differ"]
            else "your columns are in this learnware's units"
        )
        out.append({**card, "known": True, **summary, "explanation": text})
    return out
