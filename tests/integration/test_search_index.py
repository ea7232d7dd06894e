"""Search on real worker processes: concurrent index adds from two workers, a by-data job."""

from __future__ import annotations

import io

import numpy as np
import pytest

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.search import store
from marketplace.search.models import TEXT_INDEX_KEY, IndexChange, IndexState
from marketplace.search.selectors import search_by_data
from tests.marketplace.search.factories import cluster_spec, make_space, publish
from tests.support.services import WorkerProcess, wait_for, worker_env
from workers.celery import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_concurrent_publishes_from_two_worker_processes_all_end_up_searchable(
    own_worker, s3_storage, alice, tmp_path
):
    second = WorkerProcess(env=worker_env(s3_storage.env), log_path=tmp_path / "second.log")
    own_worker.start(concurrency=2)
    second.start(concurrency=2)
    try:
        rng = np.random.default_rng(0)
        centers = 4.0 * rng.standard_normal((30, 4))
        space = make_space()
        versions = [
            publish(
                space,
                alice,
                *cluster_spec(rng, centers[i : i + 1], 10),
                card=rng.standard_normal(384),
                index=False,
            )
            for i in range(30)
        ]
        for v in versions:
            app.send_task("search.index_version", args=[v.id], queue="compute")
        wait_for(lambda: IndexState.objects.filter(key=space.key, generation=30).exists())
        wait_for(lambda: IndexState.objects.filter(key=TEXT_INDEX_KEY, generation=30).exists())
    finally:
        second.stop()
    logged = set(IndexChange.objects.filter(key=space.key).values_list("version_id", flat=True))
    assert logged == {v.id for v in versions}
    assert sorted(IndexChange.objects.filter(key=space.key).values_list("generation", flat=True)) == list(
        range(1, 31)
    )
    store.forget()
    index = store.get_index(space.key, space)
    assert len(index) == 30
    for i in (0, 17, 29):
        Zq, bq = cluster_spec(rng, centers[i : i + 1], 20)
        assert (
            search_by_data(user=alice, feature_space=space.key, Z=Zq, beta=bq, k=1, mixture=False).ids[0]
            == versions[i].id
        )


def test_a_large_data_file_is_searched_in_a_worker_job(
    celery_worker, s3_storage, alice, client_for, settings
):
    rng = np.random.default_rng(1)
    centers = 4.0 * rng.standard_normal((5, 4))
    space = make_space()
    versions = [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 20)) for i in range(5)]
    settings.LWM_SEARCH_INLINE_MAX_BYTES = 100
    buf = io.BytesIO()
    np.savez(buf, X=centers[3] + 0.5 * rng.standard_normal((300, 4)))
    buf.seek(0)
    buf.name = "mine.npz"
    r = client_for(alice).post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "file": buf, "k": 2}, format="multipart"
    )
    assert r.status_code == 202, r.json()
    job = wait_for(
        lambda: (
            (j := Job.objects.get(id=r.json()["job_id"])).status
            in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED)
            and j
        )
    )
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.result["results"][0]["version_id"] == versions[3].id
    assert job.result["results"][0]["mmd2"] < job.result["results"][1]["mmd2"]


def test_a_snapshot_streamed_by_a_worker_through_s3_starts_a_fresh_process(
    celery_worker, s3_storage, alice, monkeypatch
):
    rng = np.random.default_rng(2)
    centers = 4.0 * rng.standard_normal((40, 4))
    space = make_space()
    versions = [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 12)) for i in range(40)]
    app.send_task("search.snapshot", args=[space.key], queue="compute")
    wait_for(lambda: IndexState.objects.filter(key=space.key, snapshot_generation=40).exists())
    state = IndexState.objects.get(key=space.key)
    assert state.snapshot_name.endswith(".idx") and state.pruned_generation == 0  # 40 < the rows kept

    store.forget()  # this process never built the index: it must come from the worker's snapshot
    monkeypatch.setattr(store, "build_from_db", lambda *a, **k: pytest.fail("should start from the snapshot"))
    index = store.get_index(space.key, space)
    assert index.generation == 40 and sorted(index.store.row) == sorted(v.id for v in versions)
    for i in (0, 21, 39):
        Zq, bq = cluster_spec(rng, centers[i : i + 1], 20)
        assert (
            search_by_data(user=alice, feature_space=space.key, Z=Zq, beta=bq, k=1, mixture=False).ids[0]
            == versions[i].id
        )
