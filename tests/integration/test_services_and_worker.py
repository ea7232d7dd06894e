"""The foundation on real services: broker -> worker process -> job row -> API; S3; /healthz."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.jobs.services import job_create, job_enqueue
from tests.support.services import wait_for
from workers.celery import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_task_sent_through_the_broker_updates_its_job_read_back_over_the_api(
    celery_worker, alice, client_for
):
    job = job_create(kind="diagnose", owner=alice)
    app.send_task(
        "maintenance.diagnose", args=[str(job.id)], kwargs={"steps": 3, "pause": 0.1}, queue="default"
    )

    client = client_for(alice)
    body = wait_for(
        lambda: (r := client.get(f"/api/v1/jobs/{job.id}/").json())["status"] == "succeeded" and r
    )
    assert body["progress"] == 100
    assert body["result"]["steps"] == 3
    assert body["result"]["worker"].startswith(celery_worker.hostname)
    assert [entry["stage"] for entry in body["log"]][:1] == ["diagnose"]


def test_a_file_written_through_s3_storage_is_read_back_with_a_fresh_client(s3_storage):
    name = default_storage.save(f"probe/{uuid.uuid4().hex}.bin", ContentFile(b"learnware-bytes"))
    fresh = boto3.client(
        "s3",
        endpoint_url=s3_storage.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    obj = fresh.get_object(Bucket=s3_storage.bucket, Key=name)
    assert obj["Body"].read() == b"learnware-bytes"
    assert type(storages["default"]).__name__ == "S3Storage"


def test_healthz_reports_every_part_and_a_stopped_worker_as_down(own_worker, s3_storage, client, settings):
    settings.LWM_HEALTH_TOKEN = "health-token"  # the details are for staff or the token holder
    client.defaults["HTTP_X_HEALTH_TOKEN"] = "health-token"
    # This test is about what is reported, not how fast: the first sandbox probe of a process starts bwrap
    # and a Python, which can pass the production deadline (1.5 s) on a loaded CI machine.
    settings.LWM_HEALTH_CHECK_TIMEOUT = 30.0
    own_worker.start()
    healthy = client.get("/healthz")
    body = healthy.json()
    assert healthy.status_code == 200, body
    assert set(body["checks"]) == {"database", "broker", "worker", "storage", "index", "sandbox"}
    assert (
        body["checks"]["sandbox"]["mode"] == "bwrap"
        and "no-network" in body["checks"]["sandbox"]["guarantees"]
    )
    assert own_worker.hostname in body["checks"]["worker"]["workers"]
    assert body["checks"]["storage"]["backend"] == "S3Storage"

    own_worker.stop()  # a real warm shutdown of the only worker
    down = wait_for(lambda: (r := client.get("/healthz")).status_code == 503 and r, timeout=30)
    assert down.json()["checks"]["worker"]["ok"] is False
    assert down.json()["checks"]["database"]["ok"] is True


def test_a_worker_killed_mid_job_leaves_it_resumable_and_it_completes_once(own_worker, alice, settings):
    own_worker.start()
    job = job_enqueue(
        job=job_create(kind="diagnose", owner=alice), task_name="maintenance.diagnose", args=[40, 0.25]
    )
    wait_for(
        lambda: Job.objects.filter(id=job.id, status=JobStatus.RUNNING, progress__gte=5).exists(), timeout=60
    )

    own_worker.stop(kill=True)  # SIGKILL: no acknowledgement, no clean-up
    assert Job.objects.get(id=job.id).status == JobStatus.RUNNING

    own_worker.start()
    done = wait_for(
        lambda: (j := Job.objects.get(id=job.id)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and j,
        timeout=180,
    )
    assert done.status == JobStatus.SUCCEEDED, done.message
    assert done.attempts == 2  # claimed by the killed worker, then taken over exactly once
    time.sleep(2 * settings.LWM_WORKER_HEARTBEAT_SECONDS)
    assert Job.objects.get(id=job.id).attempts == 2
