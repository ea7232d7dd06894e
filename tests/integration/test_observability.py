"""Following work by its ids across web -> broker -> worker -> sandbox, and /metrics after it.

A real worker process writes JSON lines (``LWM_LOG_FORMAT=json``) to its log file; the web
side runs in this process and its lines are captured as the JSON formatter renders them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from prometheus_client.parser import text_string_to_metric_families

from marketplace.core import logs
from marketplace.jobs.choices import TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job
from tests.support import packages
from tests.support.market import csv_bytes, market_create, user_task
from tests.support.services import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TOKEN = "scrape-token"
PUBLISH_STAGES = {"validate", "sandbox", "spec", "fingerprints", "index"}
REUSE_STAGES = {"spec", "identify", "rank", "assemble", "evaluate", "package"}


@pytest.fixture
def json_worker(own_worker: WorkerProcess) -> WorkerProcess:
    own_worker.env["LWM_LOG_FORMAT"] = "json"
    own_worker.start()
    # The worker says how isolated its sandbox is once it is ready (a process line, no job's); wait for it so
    # that a slow sandbox probe cannot land inside the window where every line must belong to a job.
    log = own_worker.log_path
    wait_for(lambda: "workers.sandbox.startup" in log.read_text(errors="replace"), timeout=120)
    return own_worker


@pytest.fixture
def web_lines() -> Iterator[list[dict[str, Any]]]:
    """The lines this (web) process logs, rendered by the production JSON formatter and filter."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from django.test import Client

    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def finished(job_id: str) -> Job:
    return wait_for(lambda: (j := Job.objects.get(id=job_id)).status in TERMINAL_STATES and j, 240)


def worker_lines(worker: WorkerProcess, offset: int) -> list[dict[str, Any]]:
    with open(worker.log_path, "rb") as handle:
        handle.seek(offset)
        raw = handle.read().decode().splitlines()
    lines = []
    for line in raw:
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a worker log line is not JSON: {line!r}")
    return lines


def task_done(worker: WorkerProcess, offset: int, job_ids: set[str]) -> list[dict[str, Any]]:
    """The worker's lines once Celery logged the end of each job's task (it follows the job's final state)."""

    def ended() -> list[dict[str, Any]] | None:
        lines = worker_lines(worker, offset)
        done = {
            line.get("job_id")
            for line in lines
            if line["logger"] == "celery.app.trace" and "succeeded" in line["message"]
        }
        return lines if job_ids <= done else None

    return wait_for(ended, 60)


def test_every_line_of_a_publish_and_a_submission_carries_its_ids_and_metrics_move(
    json_worker,
    s3_storage,
    alice,
    bob,
    client_for,
    web_lines,
    settings,
):
    settings.LWM_METRICS_TOKEN = TOKEN
    client = client_for(alice)
    market_create(owner=bob)
    before = scrape()
    offset = json_worker.log_path.stat().st_size

    web_lines.clear()
    package = SimpleUploadedFile(
        "package.zip", packages.build_table_model_package(columns=["x1", "x2", "x3"])
    )
    published = client.post(
        "/api/v1/learnwares/", {"package": package}, format="multipart", HTTP_X_REQUEST_ID="req-publish"
    )
    assert published.status_code == 202 and published["X-Request-ID"] == "req-publish"
    publish_web = list(web_lines)

    task = user_task({"upright": 1.0}, n=80, n_labelled=0, seed=22)
    web_lines.clear()
    good = client.post(
        "/api/v1/submissions/",
        {"data": SimpleUploadedFile("rows.csv", csv_bytes(task["X"]))},
        format="multipart",
        HTTP_X_REQUEST_ID="req-submit",
    )
    assert good.status_code == 202
    submit_web = list(web_lines)
    nan_rows = csv_bytes(task["X"]).replace(b"\n0.0,", b"\nnan,", 1)
    bad = client.post(
        "/api/v1/submissions/",
        {"data": SimpleUploadedFile("rows.csv", nan_rows)},
        format="multipart",
        HTTP_X_REQUEST_ID="req-bad",
    )
    assert bad.status_code == 202

    jobs = {
        "req-publish": published.json()["job"],
        "req-submit": good.json()["job"]["id"],
        "req-bad": bad.json()["job"]["id"],
    }
    request_of = {job_id: request_id for request_id, job_id in jobs.items()}
    states = {request_id: finished(job_id) for request_id, job_id in jobs.items()}
    assert states["req-publish"].status == JobStatus.SUCCEEDED, states["req-publish"].error
    assert states["req-submit"].status == JobStatus.SUCCEEDED, states["req-submit"].error
    assert (
        states["req-bad"].status == JobStatus.REJECTED
        and states["req-bad"].error["code"] == "submission:user:nan"
    )
    assert all(job.request_id == request_id for request_id, job in states.items())

    # Web: every line of each POST carries its request id; the job's creation and dispatch name the job too.
    for request_id, lines in (("req-publish", publish_web), ("req-submit", submit_web)):
        assert lines and all(line.get("request_id") == request_id for line in lines), lines
        created = [line for line in lines if line["message"].startswith("job created")]
        sent = [line for line in lines if line["message"].startswith("job sent to the broker")]
        assert [line["job_id"] for line in created] == [line["job_id"] for line in sent] == [jobs[request_id]]

    # Worker: every line names one of the three jobs, and (once the task runs) the request that created it.
    lines = task_done(json_worker, offset, set(jobs.values()))
    assert lines
    for line in lines:
        assert line.get("job_id") in request_of, line
        if (
            line["logger"] != "celery.worker.strategy"
        ):  # "Task ... received" is logged before the task's context exists
            assert line.get("request_id") == request_of[line["job_id"]], line
            assert line.get("task") in {"publish.run", "submissions.run"}, line

    def of(request_id: str) -> list[dict[str, Any]]:
        return [line for line in lines if line["job_id"] == jobs[request_id]]

    def stages(request_id: str, event: str) -> dict[str, dict[str, Any]]:
        return {line["stage"]: line for line in of(request_id) if line.get("event") == event}

    assert (
        set(stages("req-publish", "stage-start")) == set(stages("req-publish", "stage-end")) == PUBLISH_STAGES
    )
    assert set(stages("req-submit", "stage-end")) == REUSE_STAGES
    assert all(
        line["seconds"] >= 0 and line["outcome"] == "done"
        for line in stages("req-submit", "stage-end").values()
    )
    assert stages("req-bad", "stage-end")["spec"]["outcome"] == "rejected"
    sandbox = [line for line in of("req-publish") if line.get("event") == "sandbox-call"]
    assert sandbox and all(
        line["outcome"] == "ok" and line["stage"] == "sandbox" and line["seconds"] > 0 for line in sandbox
    )
    rejections = [line for line in of("req-bad") if line["message"].startswith("job rejected")]
    assert [line["error_code"] for line in rejections] == ["submission:user:nan"]
    finals = {
        request_id: [
            line
            for line in of(request_id)
            if line["logger"] == "marketplace.jobs.services" and line.get("status") in TERMINAL_STATES
        ]
        for request_id in jobs
    }
    assert {request_id: [line["status"] for line in found] for request_id, found in finals.items()} == {
        "req-publish": ["succeeded"],
        "req-submit": ["succeeded"],
        "req-bad": ["rejected"],
    }
    assert finals["req-bad"][0]["error_code"] == "submission:user:nan"

    # /metrics adds up this (web) process and the worker process.
    after = scrape()
    assert (
        moved(before, after, "lwm_http_requests_total", route="learnware-list", method="POST", status="202")
        == 1
    )
    assert (
        moved(before, after, "lwm_http_requests_total", route="submission-list", method="POST", status="202")
        == 2
    )
    assert moved(before, after, "lwm_jobs_created_total", kind="publish") == 1
    assert moved(before, after, "lwm_jobs_finished_total", task="publish.run", status="succeeded") == 1
    assert moved(before, after, "lwm_jobs_finished_total", task="submissions.run", status="succeeded") == 1
    assert moved(before, after, "lwm_jobs_finished_total", task="submissions.run", status="rejected") == 1
    assert (
        moved(before, after, "lwm_job_rejections_total", task="submissions.run", code="submission:user:nan")
        == 1
    )
    for stage in PUBLISH_STAGES:
        assert (
            moved(
                before,
                after,
                "lwm_job_stage_duration_seconds_count",
                task="publish.run",
                stage=stage,
                outcome="done",
            )
            == 1
        )
    assert moved(before, after, "lwm_sandbox_calls_total", kind="torchscript", outcome="ok") == len(sandbox)
    assert moved(before, after, "lwm_sandbox_call_duration_seconds_count", kind="torchscript") == len(sandbox)
    assert after[("lwm_broker_up", frozenset())] == 1.0
    assert ("lwm_queue_depth", frozenset({("queue", "compute")})) in after
