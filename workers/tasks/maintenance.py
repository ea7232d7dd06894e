"""Housekeeping tasks: a diagnostic job and the stale-job reaper."""

from __future__ import annotations

import time
from typing import Any

from marketplace.jobs.consistency import consistency_check
from marketplace.jobs.models import Job
from marketplace.jobs.services import jobs_dispatch_pending, jobs_reap_stale, jobs_recover_stale
from workers.base import JobTask, Report
from workers.celery import app


@app.task(
    base=JobTask, bind=True, name="maintenance.diagnose", queue="default", soft_time_limit=120, time_limit=150
)
def diagnose(self: JobTask, job_id: str, steps: int = 3, pause: float = 0.2) -> dict[str, Any]:
    """Run a small job end to end (used by /healthz checks and tests of the job machinery)."""

    def step(job: Job, report: Report) -> dict[str, Any]:
        for done in range(steps):
            report("diagnose", done, steps)
            time.sleep(pause)
        return {"steps": steps, "worker": self.worker_name}

    return self.run_job(job_id, step)


@app.task(name="maintenance.reap_stale_jobs", queue="default", soft_time_limit=60, time_limit=90)
def reap_stale_jobs() -> dict[str, int]:
    """Send again jobs orphaned by a dead worker; fail those that cannot be resent."""
    counts = jobs_recover_stale()
    counts["reaped"] = jobs_reap_stale()
    return counts


@app.task(name="maintenance.dispatch_pending_jobs", queue="default", soft_time_limit=60, time_limit=90)
def dispatch_pending_jobs() -> dict[str, int]:
    """Send the pending jobs the broker never got (beat's copy of the workers' dispatcher)."""
    return {"sent": jobs_dispatch_pending()}


@app.task(name="maintenance.check_consistency", queue="default", soft_time_limit=600, time_limit=660)
def check_consistency() -> dict[str, int]:
    """Repair and report drift between jobs, versions and stored files (``manage.py check_consistency``)."""
    return consistency_check(repair=True).counts()
