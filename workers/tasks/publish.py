"""Publish task: run the publish pipeline for one uploaded version."""

from __future__ import annotations

from typing import Any

from marketplace.jobs.models import Job
from workers.base import JobTask, Report
from workers.celery import app


@app.task(base=JobTask, bind=True, name="publish.run", queue="compute", soft_time_limit=900, time_limit=960)
def publish_run(self: JobTask, job_id: str, version_id: int) -> dict[str, Any]:
    """Validate, sandbox-probe, spec, fingerprint and index one version (idempotent)."""
    from workers.pipelines.publish import publish_version

    def step(job: Job, report: Report) -> dict[str, Any]:
        return publish_version(version_id=version_id, report=report)

    return self.run_job(job_id, step)
