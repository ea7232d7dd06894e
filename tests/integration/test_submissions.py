"""Submissions on real services: API -> broker -> worker process -> S3 -> API, kill and cancel."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.jobs.choices import TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job
from marketplace.submissions.models import Submission
from tests.support.market import csv_bytes, market_create, user_task
from tests.support.services import wait_for
from workers.pipelines.reuse_package import PackagePredictor

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _post(
    client: Any, task: dict[str, Any], *, labelled: bool = True, data: bytes | None = None
) -> dict[str, Any]:
    form = {"data": SimpleUploadedFile("rows.csv", data if data is not None else csv_bytes(task["X"]))}
    if labelled:
        form["labelled"] = SimpleUploadedFile("labelled.csv", csv_bytes(task["X_l"], task["y_l"]))
    response = client.post("/api/v1/submissions/", form, format="multipart")
    assert response.status_code == 202, response.json()
    return response.json()


def _finished(client: Any, submission_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (b := client.get(f"/api/v1/submissions/{submission_id}/").json())["status"] in TERMINAL_STATES
            and b
        )
    )


def _comparable(results: dict[str, Any]) -> dict[str, Any]:
    return {stage: {k: v for k, v in r.items() if k != "seconds"} for stage, r in results.items()}


def test_a_labelled_mixture_task_goes_end_to_end_and_its_package_predicts(
    celery_worker, s3_storage, bob, alice, client_for
):
    market_create(owner=bob)
    client = client_for(alice)
    task = user_task({"inverted": 0.5, "transposed": 0.5}, n=200, n_labelled=80, seed=21)
    created = _post(client, task)
    body = _finished(client, created["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["progress"] == 100 and set(body["results"]) == {
        "spec",
        "identify",
        "rank",
        "assemble",
        "evaluate",
        "package",
    }
    evaluation = body["results"]["evaluate"]
    assert evaluation["verdict"]["beats_from_scratch"] == (evaluation["verdicts"]["from_scratch"] == "better")
    assert evaluation["winner"]["method"] and all(
        s["ci95"][0] <= s["mean"] <= s["ci95"][1] for s in evaluation["scores"].values()
    )
    download = client.get(body["package_url"])
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == body["package_sha256"] == download["X-Checksum-Sha256"]
    predictions = PackagePredictor.from_bytes(content).predict(task["X"]).astype(int)
    assert float(np.mean(predictions == task["y"])) > 0.85
    job = client.get(f"/api/v1/jobs/{body['job']}/").json()
    assert [e["stage"] for e in job["log"] if e["status"] == "running"][:2] == ["spec", "identify"]


def test_bad_input_fails_only_its_own_submission_with_the_reason(
    celery_worker, s3_storage, bob, alice, client_for
):
    market_create(owner=bob)
    client = client_for(alice)
    task = user_task({"upright": 1.0}, n=80, n_labelled=0, seed=22)
    broken = _post(client, task, labelled=False, data=csv_bytes(task["X"]).replace(b"\n0.0,", b"\nnan,", 1))
    good = _post(client, task, labelled=False)
    failed = _finished(client, broken["submission"]["id"])
    assert failed["status"] == "rejected"
    assert failed["error"]["code"] == "submission:user:nan" and failed["error"]["message"].startswith("data:")
    assert _finished(client, good["submission"]["id"])["status"] == "succeeded"


def test_a_worker_killed_during_rank_resumes_and_completes_once_with_the_same_results(
    own_worker, s3_storage, bob, alice, client_for
):
    market_create(owner=bob)
    own_worker.slow_stage("rank", 1.5)  # a window wide enough to kill the worker inside ``rank``
    own_worker.start()
    client = client_for(alice)
    task = user_task({"mirrored": 0.5, "upright": 0.5}, n=150, n_labelled=60, seed=23)
    created = _post(client, task)
    submission_id, job_id = created["submission"]["id"], created["job"]["id"]
    wait_for(lambda: Job.objects.filter(id=job_id, stage="rank", status=JobStatus.RUNNING).exists())
    own_worker.stop(kill=True)
    interrupted = Submission.objects.get(id=submission_id).results
    assert "identify" in interrupted and "rank" not in interrupted

    own_worker.start()
    body = _finished(client, submission_id)
    assert body["status"] == "succeeded", body["error"]
    assert Job.objects.get(id=job_id).attempts == 2
    assert _comparable(body["results"])["identify"] == _comparable(interrupted)["identify"]

    # The same inputs again, uninterrupted: every stage gives the same results and package.
    again = _finished(client, _post(client, task)["submission"]["id"])
    assert _comparable(again["results"]) == _comparable(body["results"])
    assert again["package_sha256"] == body["package_sha256"]


def test_cancelling_a_running_submission_stops_its_work(own_worker, s3_storage, bob, alice, client_for):
    market_create(owner=bob)
    own_worker.slow_stage("rank", 2)
    own_worker.start()
    client = client_for(alice)
    created = _post(client, user_task({"upright": 1.0}, n=100, n_labelled=40, seed=24))
    wait_for(lambda: Job.objects.filter(id=created["job"]["id"], stage="rank").exists())
    assert client.post(f"/api/v1/submissions/{created['submission']['id']}/cancel/").status_code == 200
    body = _finished(client, created["submission"]["id"])
    assert body["status"] == "cancelled"
    assert "package" not in body["results"] and body["package_url"] is None
