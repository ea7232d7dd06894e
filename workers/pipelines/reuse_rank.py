"""Stage ``rank``: score the top candidates on the labelled sample and combine with MMD.

Each candidate runs in the sandbox on the labelled rows; its outputs are the features
F of the transferability estimators (LogME, regularised H-score, leave-one-out kNN), and
where its label space covers the user's, its direct accuracy is measured too. The
scores are normalised over the candidates and averaged with ``WEIGHTS``; every raw
score is recorded.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from specs import SpecError
from specs.transferability import combine_scores, direct_scores, knn_accuracy, logme, regularized_hscore
from specs.units import mixture_unit_factor
from workers.base import Report
from workers.pipelines.reuse_context import ImageSpaceTransform, ReuseContext
from workers.pipelines.reuse_members import Member, OutputCache, members_load, to_task_classes

MAX_CANDIDATES = 5
# Direct accuracy is the most faithful when label spaces match; MMD says whose data look like the user's.
WEIGHTS = {"accuracy": 1.0, "r2": 1.0, "logme": 0.5, "knn": 0.5, "hscore": 0.0, "neg_mmd2": 0.5}
MEANING = {
    "mmd2": "squared MMD to your data (lower: more alike)",
    "logme": "LogME evidence of a linear model on the learnware's outputs (higher: more transferable)",
    "hscore": "regularised H-score of its outputs (higher: classes better separated)",
    "knn": "leave-one-out 3-NN accuracy on its outputs",
    "accuracy": "accuracy of its own predictions on your labelled rows (only where label spaces match)",
    "r2": "R^2 of its predictions on your labelled targets",
}


def candidate_ids(ctx: ReuseContext) -> list[int]:
    """Mixture components first, then the best singles, at most MAX_CANDIDATES."""
    ident = ctx.results["identify"]
    ids = [c["version_id"] for c in ident["mixture"]["components"]] if ident["mixture"]["proposed"] else []
    for single in ident["singles"]:
        if single["version_id"] not in ids:
            ids.append(single["version_id"])
    n_mixture = len(ident["mixture"]["components"]) if ident["mixture"]["proposed"] else 0
    return ids[: max(MAX_CANDIDATES, n_mixture)]


def task_classes(ctx: ReuseContext, members: list[Member]) -> list[str]:
    """The classes of the task: the user's labelled classes and every candidate's (sorted).

    The union, not the user's classes alone: a labelled sample of 50 rows may miss a class the
    user's other rows hold (or hold a single class), and the package must still predict it."""
    labelled = ctx.results["spec"].get("labelled") or {}
    names = set(labelled.get("classes") or [])
    for m in members:
        names |= set(m.classes or [])
    return sorted(names, key=lambda c: (0, int(c), c) if c.lstrip("-").isdigit() else (1, 0, c))


def context_members(ctx: ReuseContext, ids: list[int]) -> tuple[list[Member], OutputCache]:
    if "members" not in ctx.cache:
        # With images, the cache knows the user's [C, H, W] so a member of another size is refused by name.
        shape = ctx.transform.shape if isinstance(ctx.transform, ImageSpaceTransform) else None
        ctx.cache["members"] = {}
        ctx.cache["outputs"] = OutputCache(image_shape=shape, unit_factor=_unit_factor(ctx))
    known = ctx.cache["members"]
    missing = [i for i in ids if i not in known]
    for m in members_load(missing) if missing else []:
        known[m.version_id] = m
    return [known[i] for i in ids], ctx.cache["outputs"]


def identified_weights(ctx: ReuseContext) -> dict[int, float]:
    """version id -> identification weight: the proposed mixture's, else 1 on the best single."""
    ident = ctx.results["identify"]
    if ident["mixture"]["proposed"]:
        return {c["version_id"]: float(c["weight"]) for c in ident["mixture"]["components"]}
    return {ident["singles"][0]["version_id"]: 1.0}


def _unit_factor(ctx: ReuseContext) -> np.ndarray | None:
    """User units per market unit (``specs.units``) from the identified members' stored RMS;
    None when the user's RMS or every identified member's is unknown."""
    user = ctx.user_rms
    if user is None:
        return None
    weights = identified_weights(ctx)
    loaded = {m.version_id: m for m in members_load(list(weights))}
    known = [(loaded[v].unit_rms, w) for v, w in weights.items() if loaded[v].unit_rms is not None]
    if not known or sum(w for _, w in known) <= 0:
        return None
    return mixture_unit_factor(user, [r for r, _ in known], [w for _, w in known])


def _scores(ctx: ReuseContext, member: Member, outputs: OutputCache, classes: list[str]) -> dict[str, float | None]:
    table = ctx.labelled_table
    assert table is not None and table.y is not None
    raw = outputs.raw(member, table.X)
    F = raw[:, None] if raw.ndim == 1 else raw
    scores: dict[str, float | None] = {}
    if ctx.submission.task == "regression":
        y = table.y.astype(np.float64)
        estimators = {"logme": lambda: logme(F, y, regression=True)}
        scores.update(_safe(estimators))
        scores.update(_safe({"r2": lambda: direct_scores(y, F[:, 0], task="regression")["r2"]}))
        return scores
    y = table.y.astype(str)
    scores.update(_safe({"logme": lambda: logme(F, y), "hscore": lambda: regularized_hscore(F, y),
                         "knn": lambda: knn_accuracy(F, y, k=3)}))
    own = set(member.classes or [])
    if set(np.unique(y)) <= own:
        pred = np.asarray(classes)[to_task_classes(raw, member, classes).argmax(axis=1)]
        scores["accuracy"] = direct_scores(y, pred, task="classification")["accuracy"]
    else:
        scores["accuracy"] = None
    return scores


def _safe(estimators: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, compute in estimators.items():
        try:
            out[name] = float(compute())
        except (SpecError, np.linalg.LinAlgError, ValueError):
            out[name] = None  # e.g. constant outputs: the estimator is undefined, not zero
    return out


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Score each candidate on the labelled sample; without one, keep the identification order."""
    ids = candidate_ids(ctx)
    mmd = {s["version_id"]: s["mmd2"] for s in ctx.results["identify"]["singles"]}
    if ctx.labelled_table is None:
        cards = [{**s, "scores": {"mmd2": s["mmd2"]}, "combined": None} for s in ctx.results["identify"]["singles"]
                 if s["version_id"] in ids]
        return {"skipped": True, "candidates": cards, "meaning": MEANING,
                "explanation": "no labelled sample: candidates keep the identification order (by MMD)"}
    members, outputs = context_members(ctx, ids)
    classes = task_classes(ctx, members)
    if ctx.submission.task == "classification":
        offered = set().union(*(set(m.classes or []) for m in members))
        user = set(ctx.results["spec"]["labelled"]["classes"])
        if not user & offered:
            raise ValidationFailed(f"labelled: labels {sorted(user)[:10]} match no class of the candidate learnwares "
                                   f"({sorted(offered)[:10]})", code="submission:user:labels-mismatch",
                                   details={"labelled": ["labels do not match the task"]})
    delay = float(os.environ.get("LWM_REUSE_RANK_DELAY", "0") or 0)  # fault-injection tests widen the window
    rows = []
    for i, member in enumerate(members):
        report("rank", i, len(members), f"scoring {member.name} v{member.number}")
        if delay:
            time.sleep(delay)
        rows.append({**member.card(), "mmd2": mmd.get(member.version_id), "scores": _scores(ctx, member, outputs, classes)})
    table = {name: np.array([np.nan if r["scores"].get(name) is None else r["scores"][name] for r in rows])
             for name in ("logme", "hscore", "knn", "accuracy", "r2")
             if any(r["scores"].get(name) is not None for r in rows)}
    table["neg_mmd2"] = np.array([np.nan if r["mmd2"] is None else -r["mmd2"] for r in rows])
    weights = {k: v for k, v in WEIGHTS.items() if k in table}
    combined = combine_scores(table, weights)
    order = np.argsort(-np.nan_to_num(combined, nan=-1.0), kind="stable")
    for rank, i in enumerate(order, start=1):
        rows[i]["combined"], rows[i]["rank"] = float(combined[i]), rank
        rows[i]["scores"]["mmd2"] = rows[i]["mmd2"]
    return {"skipped": False, "classes": classes, "candidates": [rows[i] for i in order], "weights": weights,
            "meaning": MEANING, "explanation": "each score normalised to [0, 1] over the candidates (min-max), then "
            f"averaged with weights {weights}"}
