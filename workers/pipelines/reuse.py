"""The reuse pipeline: spec -> identify -> rank -> assemble -> evaluate -> package.

Each stage is a ``Stage`` (``reuse_results``): its ``run(ctx, report)`` returns a typed result
whose JSON (``to_dict``) is stored under ``submission.results[stage.key]`` together with ``key``, the
sha256 of everything the stage
depends on (the submission's files and requirements, the pipeline version and the
previous stage's key). A stage whose stored key matches is skipped, so a re-run after a
worker died resumes at the first unfinished stage, and every stage is seeded, so what it
recomputes is what it would have computed the first time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketplace.submissions.choices import STAGES
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_stage_save
from workers.base import Report
from workers.pipelines import (
    reuse_adapter_package,
    reuse_adapters,
    reuse_assemble,
    reuse_evaluate,
    reuse_identify,
    reuse_package,
    reuse_rank,
    reuse_spec,
)
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_results import Stage, StageResult

# Bump when a stage's computation changes, so stored results are not reused across versions.
# 5: the spec result names the user's columns and any imputation; 6: one logistic regression (specs.logistic);
# 7: columns the labelled rows hold are learned from them (per-column methods); evaluate's imputation_cost
# 8: every score on the labelled rows sees learned columns out of fold (specs.impute_ridge.fill_labelled)
# 9: each member sees RKME-filled columns from its own RKME (specs.impute.member_rows); plan's own_rkme
# 10: the labelled rows' ridge vs each member's own RKME, per member and column (choose_column's members)
# 11: the label-free choice over a mixture is the RKME soft selector (specs.assembly.label_free)
# 12: adapter submissions in a published base model's encoder space (reuse_base; layer states in the sandbox)
# 13: the spec stage's base version is used by every later stage (spec.base_version_id); text models in a
#     published base's space (the texts embedded by that base in the sandbox; recipe.base)
# 14: identify/rank cards in a published base's space say each text model's pinned base version (base_pin)
# 15: each text head in a published base's space is fed the texts embedded by its pinned base version
#     (reuse_base_pins.member_inputs); its recipe member carries that ``base`` (recipe version 2)
PIPELINE_VERSION = 15


@dataclass(frozen=True)
class FunctionStage:
    """A ``Stage`` whose ``run`` is a module's function."""

    key: str
    run: Callable[[ReuseContext, Report], StageResult]


MODEL_STAGES: dict[str, Stage] = {
    s.key: s
    for s in (
        FunctionStage("spec", reuse_spec.run),
        FunctionStage("identify", reuse_identify.run),
        FunctionStage("rank", reuse_rank.run),
        FunctionStage("assemble", reuse_assemble.run),
        FunctionStage("evaluate", reuse_evaluate.run),
        FunctionStage("package", reuse_package.run),
    )
}
# ``requirements.kind = "adapter"``: LoRA adapters are ranked by their layers and merged or routed.
ADAPTER_STAGES: dict[str, Stage] = {
    s.key: s
    for s in (
        FunctionStage("rank", reuse_adapters.rank),
        FunctionStage("assemble", reuse_adapters.assemble),
        FunctionStage("evaluate", reuse_adapters.evaluate),
        FunctionStage("package", reuse_adapter_package.run),
    )
}
LABELLED_ONLY = {"rank", "evaluate"}  # without labels the model stages' "skipped" results serve adapters too


def stage_for(ctx: ReuseContext, stage: str) -> Stage:
    if (
        ctx.adapter_mode
        and stage in ADAPTER_STAGES
        and (stage not in LABELLED_ONLY or ctx.submission.has_labels)
    ):
        return ADAPTER_STAGES[stage]
    return MODEL_STAGES[stage]


def stage_key(submission: Submission, stage: str, previous_key: str) -> str:
    """sha256 of a stage's inputs: files, requirements, task, pipeline version, previous stage."""
    doc = {
        "stage": stage,
        "pipeline": PIPELINE_VERSION,
        "previous": previous_key,
        "data": submission.data_sha256,
        "labelled": submission.labelled_sha256,
        "requirements": submission.requirements,
        "task": submission.task,
        "modality": submission.modality,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def reuse_run(*, submission_id: str, report: Report) -> dict[str, Any]:
    """Run (or resume) every stage of one submission; return a small summary for the job.

    Raises
    ------
    ApplicationError
        The user's input cannot be used (the job is rejected with this error).
    """
    submission = Submission.objects.select_related("owner", "feature_space").get(id=submission_id)
    ctx = ReuseContext(submission)
    previous, resumed = "", []
    for done, stage in enumerate(STAGES):
        key = stage_key(submission, stage, previous)
        stored = submission.stage_result(stage)
        if stored is not None and stored.get("key") == key:
            ctx.results[stage] = stored
            resumed.append(stage)
            previous = key
            continue
        report(stage, done, len(STAGES))
        started = time.perf_counter()
        result = stage_for(ctx, stage).run(ctx, report).to_dict()
        result.update(key=key, seconds=round(time.perf_counter() - started, 4))
        submission = submission_stage_save(submission_id=submission.id, stage=stage, result=result)
        ctx.submission, ctx.results[stage] = submission, result
        previous = key
    return summary(ctx.results, resumed)


def summary(results: dict[str, Any], resumed: list[str]) -> dict[str, Any]:
    """The job's result: the delivered method, its verdicts and the package checksum."""
    evaluation = results.get("evaluate", {})
    return {
        "chosen_method": results.get("package", {}).get("method")
        or results.get("assemble", {}).get("chosen"),
        "winner": evaluation.get("winner"),
        "verdicts": evaluation.get("verdicts"),
        "verdict": evaluation.get("verdict"),
        "statement": evaluation.get("statement"),
        "package_sha256": results.get("package", {}).get("sha256"),
        "resumed_stages": resumed,
    }
