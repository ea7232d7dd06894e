"""What imputation cost: the assembled members on the user's labelled rows with the true values of
the imputed columns those rows hold, against the same rows with the columns imputed.

Only possible where the labelled file holds a column the data lack (``ReuseContext.labelled_truth``).
The imputed rows are the plan's, except that a column learned from the labelled rows
(``labelled-rows-ridge``) is predicted out of fold (``COST_FOLDS`` seeded folds: each row's value
from a ridge fitted on the other folds, λ chosen by GCV there): the deployed ridge saw every
labelled row, and judged on its own training rows it would look better than it will be on new
ones. A column the RKME fills keeps its plan value (the RKME never saw the labels). In a unit-free
space a true RKME-filled column is in the user's units while the plan's is in the developer's:
it is put in the developer's by the unit-free step (divided by its RMS, times the developer's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.impute_ridge import out_of_fold
from specs.units import unit_rms
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_results import Json
from workers.pipelines.reuse_shared import context_members, labelled_codes, task_outputs

COST_FOLDS = 5


def out_of_fold_ridge(Xo: np.ndarray, y: np.ndarray, *, k: int = COST_FOLDS, seed: int = 0) -> np.ndarray:
    """Each row's prediction from a ridge (GCV) fitted on the other ``k - 1`` seeded folds."""
    return out_of_fold(Xo, y, k=k, seed=seed)


def cost_rows(
    imputed: np.ndarray, truth: np.ndarray, plan: dict[str, Any], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows with the held columns imputed as a new row would be, rows with their true values,
    the held columns' names) for the plan's missing columns the ``truth`` rows hold."""
    mis, obs = list(plan["missing"]), np.asarray(plan["observed"], dtype=np.int64)
    held = [j for j in mis if np.isfinite(truth[:, j]).all()]
    learned = {int(r["column"]) for r in plan.get("ridge") or []}
    filled, true = imputed.copy(), imputed.copy()
    for j in held:
        if j in learned:
            filled[:, j] = out_of_fold_ridge(truth[:, obs], truth[:, j], seed=seed)
            true[:, j] = truth[:, j]
        elif plan.get("unit_free"):
            rms_dev = float(plan["rms_missing"][mis.index(j)])
            true[:, j] = truth[:, j] / unit_rms(truth[:, [j]])[0] * rms_dev
        else:
            true[:, j] = truth[:, j]
    return filled, true, [plan["columns"][mis.index(j)] for j in held]


def imputation_cost(ctx: ReuseContext, classes: list[str], members: list[Json]) -> Json | None:
    """Each member's primary metric on the labelled rows with the true columns and with them imputed
    (module docstring); None when the labelled rows hold no imputed column."""
    plan, truth, table = ctx.imputation, ctx.labelled_truth, ctx.labelled_table
    if not plan or truth is None or table is None:
        return None
    filled, true, held = cost_rows(table.X, truth.X, plan, seed=ctx.seed)
    if not held:
        return None
    task, metric = ctx.submission.task, methods.primary(ctx.submission.task)
    y = labelled_codes(ctx, classes)
    loaded, _ = context_members(ctx, [int(m["version_id"]) for m in members])
    rows = []
    for card, member in zip(members, loaded, strict=True):
        with_true, with_imputed = (
            methods.score(task, y, task_outputs(ctx, [member], X, classes)[0])[metric] for X in (true, filled)
        )
        rows.append(
            {
                "version_id": member.version_id,
                "name": card.get("name"),
                "with_column": with_true,
                "imputed": with_imputed,
                "cost": with_true - with_imputed,
            }
        )
    methods_by_column = plan.get("methods") or {}
    return {
        "metric": metric,
        "columns": held,
        "methods": {c: methods_by_column.get(c, plan["method"]) for c in held},
        "rows": int(true.shape[0]),
        "folds": COST_FOLDS,
        "members": rows,
    }
