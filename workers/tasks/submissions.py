"""Submission tasks: run the reuse pipeline for one submission; delete expired submission data."""

from __future__ import annotations

from typing import Any

from marketplace.jobs.models import Job
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submissions_purge_expired
from workers.base import JobTask, Report
from workers.celery import app
from workers.pipelines.model_selection import model_selection_run
from workers.pipelines.reuse import reuse_run


@app.task(
    base=JobTask, bind=True, name="submissions.run", queue="compute", soft_time_limit=1800, time_limit=1900
)
def run(self: JobTask, job_id: str, submission_id: str) -> dict[str, Any]:
    """Run (or resume) the reuse pipeline of one submission on its job record; a submission asking
    which base model to build on (``requirements.kind = "base_model"``) runs model selection."""

    def step(job: Job, report: Report) -> dict[str, Any]:
        kind = (Submission.objects.values_list("requirements", flat=True).get(id=submission_id) or {}).get(
            "kind"
        )
        if kind == "base_model":
            return model_selection_run(submission_id=submission_id, report=report)
        return reuse_run(submission_id=submission_id, report=report)

    return self.run_job(job_id, step)


@app.task(name="submissions.purge_expired", queue="default", soft_time_limit=600, time_limit=660)
def purge_expired() -> dict[str, int]:
    """Delete the files of finished submissions older than LWM_SUBMISSION_RETENTION_DAYS."""
    return {"purged": submissions_purge_expired()}
