"""Stage ``evaluate``: every method on the held-out rows beside two baselines, and a verdict.

Baselines: the best single learnware (chosen on the fit + validation rows, never on the
test rows) and models trained from scratch on the same fit + validation rows (logistic
regression and a small MLP, or ridge and a small MLP for regression). The verdict compares
the chosen method with the better of the from-scratch models *on the test rows*, which
favours the baseline: a "beats" claim is conservative.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from specs.assembly import Assembly
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_assemble import labelled_codes, task_outputs
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_rank import context_members


def _scratch_models(task: str, seed: int) -> dict[str, Any]:
    if task == "classification":
        return {
            "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "mlp": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=seed)),
        }
    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "mlp": make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=1000, random_state=seed)),
    }


def _from_scratch(ctx: ReuseContext, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                  n_classes: int) -> dict[str, dict[str, float]]:
    task, out = ctx.submission.task, {}
    for name, model in _scratch_models(task, ctx.seed).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], y[train])
        if task == "classification":
            proba = np.zeros((test.shape[0], n_classes))
            proba[:, model.classes_.astype(np.int64)] = model.predict_proba(X[test])
            out[name] = methods.score(task, y[test], proba)
        else:
            out[name] = methods.score(task, y[test], model.predict(X[test]))
    return out


def _statement(chosen: str, metric: str, value: float, single: dict[str, Any], scratch_name: str, scratch: float,
               n_test: int, n_train: int) -> tuple[dict[str, bool], str]:
    beats_single, beats_scratch = value > single["score"], value > scratch
    verdict = {"beats_best_single": bool(beats_single), "beats_from_scratch": bool(beats_scratch),
               "beats_both": bool(beats_single and beats_scratch)}
    head = (f"On {n_test} held-out rows the assembled module ({chosen}) scored {metric} {value:.4f}; "
            f"the best single learnware ({single['name']}) {single['score']:.4f}; "
            f"the best model trained from scratch on the same {n_train} labelled rows ({scratch_name}) {scratch:.4f}. ")
    if beats_single and beats_scratch:
        return verdict, head + "It beats both baselines."
    missed = [n for n, ok in (("the best single learnware", beats_single), ("the model trained from scratch", beats_scratch)) if not ok]
    return verdict, head + f"It does NOT beat {' nor '.join(missed)}."


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Score every fitted method and both baselines on the held-out rows; state the verdict."""
    if ctx.labelled_table is None:
        ident = ctx.results["identify"]
        return {"labelled": False, "verdict": None,
                "identification": {"best_single_mmd2": ident["singles"][0]["mmd2"], "mixture": ident["mixture"]},
                "statement": "No labelled sample was given, so nothing was evaluated: this report holds the "
                             "identification scores only, and the assembled module's accuracy on your task is unknown."}
    assemble = ctx.results["assemble"]
    task, metric = ctx.submission.task, methods.primary(ctx.submission.task)
    classes = assemble["classes"] or []
    members, _ = context_members(ctx, [m["version_id"] for m in assemble["members"]])
    X = ctx.labelled_table.X
    outputs, Xs, y = task_outputs(ctx, members, X, classes), ctx.transform(X), labelled_codes(ctx, classes)
    test, train = ctx.splits["test"], np.sort(np.concatenate([ctx.splits["fit"], ctx.splits["val"]]))
    nc = len(classes) if task == "classification" else None
    scores = {}
    for i, row in enumerate(assemble["methods"]):
        report("evaluate", i, len(assemble["methods"]) + 1, f"testing {row['method']}")
        model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
        prediction = methods.predict_method(model, task=task, n_classes=nc, outputs=[o[test] for o in outputs], Xs=Xs[test])
        scores[row["method"]] = methods.score(task, y[test], prediction)
    # The best single learnware is picked on the rows the assembly could use, then tested like it.
    train_scores = [methods.score(task, y[train], o[train])[metric] for o in outputs]
    best = int(np.argmax(train_scores))
    single = {**members[best].card(), "score": methods.score(task, y[test], outputs[best][test])[metric]}
    scratch = _from_scratch(ctx, X, y, train, test, nc or 0)
    scratch_name = max(scratch, key=lambda k: scratch[k][metric])
    chosen = assemble["chosen"]
    verdict, statement = _statement(chosen, metric, scores[chosen][metric], single, scratch_name,
                                    scratch[scratch_name][metric], int(test.shape[0]), int(train.shape[0]))
    return {"labelled": True, "metric": metric, "n_test": int(test.shape[0]), "n_train": int(train.shape[0]),
            "methods": scores, "chosen": chosen, "chosen_score": scores[chosen][metric],
            "baselines": {"best_single": single, "from_scratch": {"best": scratch_name, "models": scratch}},
            "verdict": verdict, "statement": statement}
