"""Search tasks: index one version, snapshot an index, search with a large data file."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import storages

from marketplace.jobs.models import Job
from marketplace.learnwares.models import FeatureSpace, Specification
from marketplace.search.cross_space import MIN_SHARED
from marketplace.search.file_search import file_search
from marketplace.search.services import index_add, index_snapshot
from workers.base import JobTask, Report
from workers.celery import app


@app.task(name="search.index_version", queue="compute", soft_time_limit=60, time_limit=90)
def index_version(version_id: int) -> dict[str, Any]:
    """Record a published version in its indexes (idempotent)."""
    spec = Specification.objects.select_related("feature_space").get(version_id=version_id)
    index_add(specification=spec)
    return {"version_id": version_id}


# A 1M-spec space streams ~13 GiB twice (to a local file, then to storage): allow half an hour.
@app.task(name="search.snapshot", queue="compute", soft_time_limit=1800, time_limit=1920)
def snapshot(key: str) -> dict[str, Any]:
    """Stream index ``key`` to storage at its current generation and prune the change rows it covers."""
    state = index_snapshot(key=key)
    return {"key": key, "generation": state.snapshot_generation}


@app.task(
    base=JobTask, bind=True, name="search.by_data", queue="compute", soft_time_limit=300, time_limit=360
)
def by_data(
    self: JobTask, job_id: str, feature_space: str, path: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Spec a large data file and search with it; the job's result is the search result."""

    def step(job: Job, report: Report) -> dict[str, Any]:
        storage = storages["default"]
        report("spec", 0, 2)
        with storage.open(path, "rb") as fh:
            content = fh.read()
        space = FeatureSpace.objects.get(key=feature_space)
        options = dict(params)
        column_map = options.pop("column_map", None)
        cross, min_shared = options.pop("cross_space", False), options.pop("min_shared_columns", MIN_SHARED)
        report("search", 1, 2)
        body, _ = file_search(
            user=job.owner,
            space=space,
            name=path,
            content=content,
            column_map=column_map,
            cross_space=cross,
            min_shared=min_shared,
            params=options,
        )
        storage.delete(path)  # the user's data is not kept once specced
        return body

    return self.run_job(job_id, step)
