"""What a finished submission's pipeline itself predicts, for tests that compare a package with it."""

from __future__ import annotations

from typing import Any

import numpy as np


def delivered_predictions(submission: Any) -> np.ndarray:
    """Class indices (in the task's class order) that the delivered assembly, as refitted by the
    pipeline, gives on the submission's labelled rows (recomputed through the pipeline's own code)."""
    from specs.assembly import Assembly
    from workers.pipelines import reuse_methods
    from workers.pipelines.reuse_context import ReuseContext
    from workers.pipelines.reuse_shared import context_members, task_outputs

    ctx = ReuseContext(submission)
    ctx.results.update(submission.results)
    assemble, method = submission.results["assemble"], submission.results["package"]["method"]
    classes = assemble["classes"]
    row = next(r for r in assemble["methods"] if r["method"] == method)
    members, _ = context_members(ctx, [m["version_id"] for m in assemble["members"]])
    X = ctx.labelled_table.X
    model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
    proba = reuse_methods.predict_method(
        model,
        task="classification",
        n_classes=len(classes),
        outputs=task_outputs(ctx, members, X, classes, rows=np.arange(X.shape[0])),
        Xs=ctx.transform(X),
    )
    return proba.argmax(axis=1)
