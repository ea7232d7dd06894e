"""Stage ``rank``: score the top candidates on the labelled sample and combine with MMD.

Each candidate runs in the sandbox on the labelled rows; its outputs are the features
F of the transferability estimators (LogME, regularised H-score, leave-one-out kNN), and
where its label space covers the user's, its direct accuracy is measured too. The
scores are normalised over the candidates and averaged with ``WEIGHTS``; every raw
score is recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from specs.transferability import combine_scores, direct_scores, knn_accuracy, logme, regularized_hscore
from workers.base import Report
from workers.pipelines.reuse_base_pins import identified_pins
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_members import Member, OutputCache, to_task_classes
from workers.pipelines.reuse_results import RankScored, RankSkipped
from workers.pipelines.reuse_shared import (
    RANK_MEANING,
    candidate_ids,
    context_members,
    identified_mmd2,
    safe_scores,
    task_classes,
)

# Direct accuracy is the most faithful when label spaces match; MMD says whose data look like the user's.
WEIGHTS = {"accuracy": 1.0, "r2": 1.0, "logme": 0.5, "knn": 0.5, "hscore": 0.0, "neg_mmd2": 0.5}


def _scores(
    ctx: ReuseContext, member: Member, outputs: OutputCache, classes: list[str]
) -> dict[str, float | None]:
    table = ctx.labelled_table
    assert table is not None and table.y is not None
    raw = outputs.raw(member, table.X, rows=np.arange(table.X.shape[0]))  # every labelled row, in order
    F = raw[:, None] if raw.ndim == 1 else raw
    scores: dict[str, float | None] = {}
    if ctx.submission.task == "regression":
        y = table.y.astype(np.float64)
        estimators = {"logme": lambda: logme(F, y, regression=True)}
        scores.update(safe_scores(estimators))
        scores.update(safe_scores({"r2": lambda: direct_scores(y, F[:, 0], task="regression")["r2"]}))
        return scores
    y = table.y.astype(str)
    scores.update(
        safe_scores(
            {
                "logme": lambda: logme(F, y),
                "hscore": lambda: regularized_hscore(F, y),
                "knn": lambda: knn_accuracy(F, y, k=3),
            }
        )
    )
    own = set(member.classes or [])
    if set(np.unique(y)) <= own:
        pred = np.asarray(classes)[to_task_classes(raw, member, classes).argmax(axis=1)]
        scores["accuracy"] = direct_scores(y, pred, task="classification")["accuracy"]
    else:
        scores["accuracy"] = None
    return scores


def run(ctx: ReuseContext, report: Report) -> RankSkipped | RankScored:
    """Score each candidate on the labelled sample; without one, keep the identification order."""
    ids = candidate_ids(ctx)
    mmd = identified_mmd2(ctx)
    if ctx.labelled_table is None:
        cards: list[dict[str, Any]] = [
            {**s, "scores": {"mmd2": s["mmd2"]}, "combined": None}
            for s in ctx.identify_result.singles
            if s["version_id"] in ids
        ]
        return RankSkipped(
            skipped=True,
            candidates=cards,
            meaning=RANK_MEANING,
            explanation="no labelled sample: candidates keep the identification order (by MMD)",
        )
    members, outputs = context_members(ctx, ids)
    classes = task_classes(ctx, members)
    if ctx.submission.task == "classification":
        offered = set().union(*(set(m.classes or []) for m in members))
        user = set((ctx.spec_result.labelled or {})["classes"])
        if not user & offered:
            raise ValidationFailed(
                f"labelled: labels {sorted(user)[:10]} match no class of the candidate learnwares "
                f"({sorted(offered)[:10]})",
                code="submission:user:labels-mismatch",
                details={"labelled": ["labels do not match the task"]},
            )
    rows = []
    pins = identified_pins(ctx.identify_result)  # a published base's space: each head's pinned base version
    for i, member in enumerate(members):
        report("rank", i, len(members), f"scoring {member.name} v{member.number}")
        rows.append(
            {
                **member.card(),
                **({"base_pin": pins[member.version_id]} if member.version_id in pins else {}),
                "mmd2": mmd.get(member.version_id),
                "scores": _scores(ctx, member, outputs, classes),
            }
        )
    table = {
        name: np.array([np.nan if r["scores"].get(name) is None else r["scores"][name] for r in rows])
        for name in ("logme", "hscore", "knn", "accuracy", "r2")
        if any(r["scores"].get(name) is not None for r in rows)
    }
    table["neg_mmd2"] = np.array([np.nan if r["mmd2"] is None else -r["mmd2"] for r in rows])
    weights = {k: v for k, v in WEIGHTS.items() if k in table}
    combined = combine_scores(table, weights)
    order = np.argsort(-np.nan_to_num(combined, nan=-1.0), kind="stable")
    for rank, i in enumerate(order, start=1):
        rows[i]["combined"], rows[i]["rank"] = float(combined[i]), rank
        rows[i]["scores"]["mmd2"] = rows[i]["mmd2"]
    return RankScored(
        skipped=False,
        classes=classes,
        candidates=[rows[i] for i in order],
        weights=weights,
        meaning=RANK_MEANING,
        explanation="each score normalised to [0, 1] over the candidates (min-max), then "
        f"averaged with weights {weights}",
    )
