"""Stage ``evaluate``: every candidate and both baselines on the same repeated folds, the
winner, and verdicts with confidence.

All labelled rows are used: the assemble stage scored the label-free choice and each
labelled method on repeated stratified k-fold splits of them; here the models trained from
scratch (logistic regression and a small MLP, or ridge and a small MLP for regression) are
scored on the very same splits, so every comparison is paired. Intervals and tests use the
corrected resampled variance (``specs.evaluation``).

The delivered package is the measured winner: the label-free choice unless another
candidate (a labelled method, or the better from-scratch model) gains more than its
standard error over it. The verdicts compare the winner with the best single learnware
(the labelled ``best_single`` method: the member with the lowest loss on each fold's
training rows) and with the better from-scratch model (picked by its mean over the same
folds, which favours the baseline: a "better" claim is conservative).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from specs.assembly import Assembly
from specs.evaluation import (
    VERDICT_WORDS,
    Folds,
    ScoreInterval,
    metric_bounds,
    one_se_choice,
    paired_verdict,
    proportion_interval,
    score_interval,
)
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_impute_cost import imputation_cost
from workers.pipelines.reuse_results import (
    AssembleResult,
    EvaluateLabelled,
    EvaluateSingleClass,
    EvaluateUnlabelled,
    Json,
    Winner,
)
from workers.pipelines.reuse_scratch import scratch_fold_scores, scratch_models
from workers.pipelines.reuse_shared import (
    LABEL_FREE,
    context_members,
    cv_folds,
    deliverable,
    labelled_codes,
    labels_usable,
    task_outputs,
)

FROM_SCRATCH = "from_scratch"
BEST_SINGLE = "best_single"


def _scratch_fold_scores(
    ctx: ReuseContext, X: np.ndarray, y: np.ndarray, folds: Folds, nc: int, report: Report
) -> dict[str, list[float]]:
    task = ctx.submission.task
    out: dict[str, list[float]] = {}
    for name, template in scratch_models(task, ctx.seed).items():
        report("evaluate", len(out), 3, f"training {name} from scratch on every fold")
        out[name] = scratch_fold_scores(template, X, y, folds.splits, task, nc)
    return out


def winner_kind(name: str, rows: dict[str, dict[str, Any]]) -> str:
    if name == FROM_SCRATCH:
        return "from_scratch"
    return "best_single" if rows[name].get("assembly_kind") == BEST_SINGLE else "assembly"


def _assembled(ctx: ReuseContext) -> AssembleResult:
    result = ctx.assemble_result
    assert isinstance(result, AssembleResult)  # adapters have their own evaluate stage
    return result


def _unlabelled(ctx: ReuseContext) -> EvaluateUnlabelled:
    ident = ctx.identify_result
    return EvaluateUnlabelled(
        labelled=False,
        verdict=None,
        winner=_winner_unlabelled(ctx),
        identification={"best_single_mmd2": ident.singles[0]["mmd2"], "mixture": ident.mixture},
        statement="No labelled sample was given, so nothing was evaluated: this report holds the "
        "identification scores only, and the assembled module's accuracy on your task is unknown.",
    )


def _winner_unlabelled(ctx: ReuseContext) -> Winner:
    chosen = ctx.assemble_result.chosen
    return {
        "kind": "best_single" if chosen == BEST_SINGLE else "assembly",
        "method": chosen,
        "name": _method_name(ctx, chosen),
    }


def _method_name(ctx: ReuseContext, method: str) -> str:
    """A reader's name for a delivered method: the member's name for a best single."""
    assemble = ctx.assemble_result
    row = next((r for r in assemble.methods if r["method"] == method), None)
    kind = (row or {}).get("assembly_kind", method)
    if kind == BEST_SINGLE and row is not None and "weights" in row.get("parameters", {}):
        best = int(np.argmax(row["parameters"]["weights"]))
        m = assemble.members[best]
        return f"{m['name']} v{m['version']}"
    if method == "label_free":  # the assemble stage's own row: name what it chose
        return f"chosen without labels ({kind})"
    return method


def _single_class(ctx: ReuseContext, reason: str) -> EvaluateSingleClass:
    """The label-free package measured on a single-class sample: its accuracy, nothing to compare."""
    assemble = _assembled(ctx)
    classes = assemble.classes or []
    members, _ = context_members(ctx, [m["version_id"] for m in assemble.members])
    assert ctx.labelled_table is not None
    X = ctx.labelled_table.X
    outputs = task_outputs(ctx, members, X, classes, rows=np.arange(X.shape[0]))  # every labelled row
    Xs, y = ctx.transform(X), labelled_codes(ctx, classes)
    chosen = assemble.chosen
    row = next(r for r in assemble.methods if r["method"] == chosen)
    model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
    pred = methods.predict_method(
        model, task="classification", n_classes=len(classes), outputs=outputs, Xs=Xs
    )
    right = int(np.sum(pred.argmax(axis=1) == y))
    n = int(y.shape[0])
    ci95 = proportion_interval(right, n)
    low, high = ci95
    scores: dict[str, Json] = {chosen: {"mean": right / n, "ci95": ci95, "n": n}}
    winner = _winner_unlabelled(ctx)
    statement = (
        f"The delivered module ({chosen}) labels {right} of your {n} labelled rows correctly "
        f"(accuracy {right / n:.3f}, 95 % interval {low:.3f} to {high:.3f}). {reason[0].upper()}{reason[1:]}"
        "; "
        "no baseline can be compared on one class."
    )
    return EvaluateSingleClass(
        labelled=True,
        labels_used=False,
        metric="accuracy",
        n_test=n,
        n_train=0,
        methods={chosen: {"accuracy": right / n}},
        chosen=chosen,
        chosen_score=right / n,
        winner=winner,
        scores=scores,
        verdicts={BEST_SINGLE: None, FROM_SCRATCH: None},
        skipped={BEST_SINGLE: reason, FROM_SCRATCH: reason},
        baselines={
            "best_single": {"name": winner["name"], "score": None},
            "from_scratch": {"best": None, "models": {}},
        },
        verdict={"beats_best_single": False, "beats_from_scratch": False, "beats_both": False},
        statement=statement,
    )


def run(ctx: ReuseContext, report: Report) -> EvaluateUnlabelled | EvaluateSingleClass | EvaluateLabelled:
    """Score the from-scratch baselines on the assemble stage's folds; choose the winner; state the
    verdicts."""
    if ctx.labelled_table is None:
        return _unlabelled(ctx)
    usable, why = labels_usable(ctx)
    if not usable:
        return _single_class(ctx, why)
    assemble = _assembled(ctx)
    task, metric = ctx.submission.task, methods.primary(ctx.submission.task)
    classes = assemble.classes or []
    nc = len(classes) if task == "classification" else 0
    X, y = ctx.labelled_table.X, labelled_codes(ctx, classes)
    folds = cv_folds(ctx, y)
    rows = {r["method"]: r for r in assemble.methods if not r.get("skipped")}
    fold_scores = {name: r["validation"]["per_fold"] for name, r in rows.items()}
    scratch = _scratch_fold_scores(ctx, X, y, folds, nc, report)
    scratch_best = max(scratch, key=lambda k: float(np.mean(scratch[k])))
    share = folds.test_share
    candidates = {**fold_scores, FROM_SCRATCH: scratch[scratch_best]}
    # The user's ``methods`` allow-list binds the delivery: from scratch is then only reported.
    default, names = deliverable(ctx, list(rows.values()))
    eligible = {
        n: candidates[n] for n in [*names, *([] if ctx.requirements.get("methods") else [FROM_SCRATCH])]
    }
    winner, gains = one_se_choice(default, {default: candidates[default], **eligible}, share)
    single = fold_scores.get(BEST_SINGLE, fold_scores[LABEL_FREE])
    verdicts = {
        BEST_SINGLE: paired_verdict(candidates[winner], single, share)[0],
        FROM_SCRATCH: paired_verdict(candidates[winner], scratch[scratch_best], share)[0],
    }
    differences = {
        BEST_SINGLE: paired_verdict(candidates[winner], single, share)[1],
        FROM_SCRATCH: paired_verdict(candidates[winner], scratch[scratch_best], share)[1],
    }
    bounds = metric_bounds(metric)
    scores = {name: score_interval(v, share, bounds=bounds) for name, v in candidates.items()}
    scores[BEST_SINGLE] = score_interval(single, share, bounds=bounds)
    scores.update(
        {f"{FROM_SCRATCH}:{k}": score_interval(v, share, bounds=bounds) for k, v in scratch.items()}
    )
    kind = winner_kind(winner, rows)
    name = f"{scratch_best} trained from scratch" if kind == "from_scratch" else _method_name(ctx, winner)
    n_train = int(round(folds.n * (folds.k - 1) / folds.k))
    statement = _statement(winner, name, kind, metric, scores, verdicts, folds, scratch_best)
    return EvaluateLabelled(
        labelled=True,
        labels_used=True,
        metric=metric,
        n_test=folds.n,
        n_train=n_train,
        folds={"k": folds.k, "repeats": folds.repeats, "rows": folds.n},
        methods={n: {metric: scores[n]["mean"]} for n in fold_scores},
        chosen=winner,
        chosen_score=scores[winner]["mean"],
        winner={"kind": kind, "method": scratch_best if kind == "from_scratch" else winner, "name": name},
        scores=scores,
        verdicts=verdicts,
        per_fold={
            **{n: [float(v) for v in vals] for n, vals in candidates.items()},
            BEST_SINGLE: [float(v) for v in single],
        },
        differences=differences,
        gains_over_label_free=gains,
        skipped={r["method"]: r["skipped"] for r in assemble.methods if r.get("skipped")},
        baselines={
            "best_single": {
                "name": _method_name(ctx, BEST_SINGLE) if BEST_SINGLE in rows else None,
                "score": scores[BEST_SINGLE]["mean"],
            },
            "from_scratch": {
                "best": scratch_best,
                "models": {k: {metric: float(np.mean(v))} for k, v in scratch.items()},
            },
        },
        verdict={
            "beats_best_single": verdicts[BEST_SINGLE] == "better",
            "beats_from_scratch": verdicts[FROM_SCRATCH] == "better",
            "beats_both": verdicts[BEST_SINGLE] == "better" and verdicts[FROM_SCRATCH] == "better",
        },
        statement=statement,
        imputation_cost=imputation_cost(ctx, classes, assemble.members),
    )


def _statement(
    winner: str,
    name: str,
    kind: str,
    metric: str,
    scores: Mapping[str, ScoreInterval],
    verdicts: Mapping[str, str],
    folds: Folds,
    scratch_best: str,
) -> str:
    def shown(key: str) -> str:
        s = scores[key]
        return f"{s['mean']:.3f} (95 % interval {s['ci95'][0]:.3f} to {s['ci95'][1]:.3f})"

    what = {
        "from_scratch": f"a {scratch_best} trained from scratch on your rows",
        "best_single": f"the single learnware {name}",
        "assembly": f"the assembly {name}",
    }[kind]
    return (
        f"Delivered: {what}, {metric} {shown(winner)} in {folds.repeats} x {folds.k}-fold cross-validation "
        f"on your {folds.n} labelled rows. It is {VERDICT_WORDS[verdicts[BEST_SINGLE]]} the best single "
        f"learnware ({shown(BEST_SINGLE)}) and {VERDICT_WORDS[verdicts[FROM_SCRATCH]]} the best model "
        f"trained from scratch ({shown(FROM_SCRATCH)})."
    )
