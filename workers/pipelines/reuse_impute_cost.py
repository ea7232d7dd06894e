"""What imputation cost: the assembled members on the user's labelled rows with the true values of
the imputed columns those rows hold, against the same rows with the columns imputed.

Only possible where the labelled file holds a column the data lack (``ReuseContext.labelled_truth``).
The imputed rows are the labelled table the other stages score on (``reuse_impute.fill_table``): a
column learned from the labelled rows (``labelled-rows-ridge``) is there predicted out of fold
(``OOF_FOLDS`` seeded folds, ``specs.impute_ridge.fill_labelled``): the deployed ridge saw every
labelled row, and judged on its own training rows it would look better than it will be on new
ones. A column the RKME fills keeps its plan value (the RKME never saw the labels). In a unit-free
space a true RKME-filled column is in the user's units while the plan's is in the developer's:
it is put in the developer's by the unit-free step (divided by its RMS, times the developer's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.impute_ridge import OOF_FOLDS
from specs.units import unit_rms
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_results import Json
from workers.pipelines.reuse_shared import context_members, labelled_codes, task_outputs


def cost_rows(
    imputed: np.ndarray, truth: np.ndarray, plan: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(the labelled rows as imputed, the same rows with the true values of the held columns, the
    held columns' names) for the plan's missing columns the ``truth`` rows hold. ``imputed`` is the
    labelled table from ``reuse_impute.fill_table``: its learned columns are already out of fold."""
    mis = list(plan["missing"])
    held = [j for j in mis if np.isfinite(truth[:, j]).all()]
    learned = {int(r["column"]) for r in plan.get("ridge") or []}
    true = imputed.copy()
    for j in held:
        if j not in learned and plan.get("unit_free"):
            rms_dev = float(plan["rms_missing"][mis.index(j)])
            true[:, j] = truth[:, j] / unit_rms(truth[:, [j]])[0] * rms_dev
        else:
            true[:, j] = truth[:, j]
    return imputed, true, [plan["columns"][mis.index(j)] for j in held]


def imputation_cost(ctx: ReuseContext, classes: list[str], members: list[Json]) -> Json | None:
    """Each member's primary metric on the labelled rows with the true columns and with them imputed
    (module docstring); None when the labelled rows hold no imputed column."""
    plan, truth, table = ctx.imputation, ctx.labelled_truth, ctx.labelled_table
    if not plan or truth is None or table is None:
        return None
    filled, true, held = cost_rows(table.X, truth.X, plan)
    # The true rows' held columns stay true for every member; the rest is each member's own fill.
    kept = tuple(int(plan["missing"][plan["columns"].index(c)]) for c in held)
    if not held:
        return None
    task, metric = ctx.submission.task, methods.primary(ctx.submission.task)
    y = labelled_codes(ctx, classes)
    loaded, _ = context_members(ctx, [int(m["version_id"]) for m in members])
    rows = []
    for card, member in zip(members, loaded, strict=True):
        with_true, with_imputed = (
            methods.score(task, y, task_outputs(ctx, [member], X, classes, k)[0])[metric]
            for X, k in ((true, kept), (filled, ()))
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
        "folds": OOF_FOLDS,
        "members": rows,
    }
