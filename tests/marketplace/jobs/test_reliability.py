"""Durable dispatch, the one finalizing transition, the consistency check and Idempotency-Key (in-process,
on the test PostgreSQL); the same under real faults is tests/faults/."""

from __future__ import annotations

import errno
import socket
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.utils import timezone

from marketplace.core.exceptions import TransientError
from marketplace.core.faults import infrastructure_code, infrastructure_part
from marketplace.jobs.choices import JobStatus
from marketplace.jobs.consistency import consistency_check
from marketplace.jobs.models import Job
from marketplace.jobs.services import job_claim, job_finish, job_release_for_retry, jobs_dispatch_pending
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import LearnwareVersion
from tests.support import packages

pytestmark = pytest.mark.django_db


def _upload(client, data, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        "/api/v1/learnwares/", {"package": SimpleUploadedFile("p.zip", data)}, format="multipart", **headers
    )


def _refused_endpoint_error() -> Exception:
    """A real botocore error: a HEAD to a port nobody listens on."""
    import boto3
    from botocore.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        s3.head_object(Bucket="b", Key="k")
    except Exception as exc:  # noqa: BLE001 - the error is what this returns
        return exc
    raise AssertionError("the closed port answered")


@pytest.mark.parametrize(
    ("make", "part", "code"),
    [
        (_refused_endpoint_error, "storage", "job:infra:storage-unavailable"),
        (
            lambda: OperationalError("server closed the connection unexpectedly"),
            "database",
            "job:infra:database-unavailable",
        ),
        (lambda: OSError(errno.ENOSPC, "No space left on device"), "disk", "job:infra:disk-full"),
        (lambda: OSError(errno.EIO, "Input/output error"), "disk", "job:infra:disk-error"),
        (lambda: TransientError("the sandbox did not answer"), "service", "job:infra:service-unavailable"),
        (
            lambda: TransientError("cannot read the package", part="storage"),
            "storage",
            "job:infra:storage-unavailable",
        ),
    ],
)
def test_infrastructure_failures_are_classified_by_type(make, part, code):
    exc = make()
    assert infrastructure_part(exc) == part
    assert infrastructure_code(exc, part) == code
    wrapped = TransientError("while publishing")
    wrapped.__cause__ = exc
    assert infrastructure_part(wrapped) == part  # the most specific cause wins


@pytest.mark.parametrize(
    "exc", [ValueError("bad"), KeyError("x"), OSError(errno.ENOENT, "missing"), ZeroDivisionError()]
)
def test_bugs_and_user_errors_are_not_infrastructure(exc):
    assert infrastructure_part(exc) is None


def test_a_publish_job_that_fails_rejects_its_version_in_the_same_transition(
    alice, client_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        body = _upload(client_for(alice), packages.build_table_model_package(name="follows")).json()
    version = LearnwareVersion.objects.get(job_id=body["job"])
    assert version.status == VersionStatus.UPLOADED and version.package.name
    with django_capture_on_commit_callbacks(execute=True):
        assert job_finish(
            job_id=body["job"],
            status=JobStatus.FAILED,
            message="storage down",
            error={"code": "job:infra:storage-unavailable", "message": "storage down"},
        )
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED
    assert version.rejection_reasons[0]["code"] == "job:infra:storage-unavailable"
    assert version.package.name == ""  # the file went after the commit
    assert not job_finish(job_id=body["job"], status=JobStatus.FAILED)  # final once


def test_the_dispatcher_sends_jobs_never_sent_and_due_retries_only(alice, settings):
    settings.LWM_JOB_DISPATCH_GRACE_SECONDS = 0
    fresh = Job.objects.create(kind="diagnose", task_name="maintenance.diagnose", task_args=["x"])
    waiting = Job.objects.create(
        kind="diagnose",
        task_name="maintenance.diagnose",
        task_args=["y"],
        retry_at=timezone.now() + timedelta(hours=1),
    )
    sent = Job.objects.create(
        kind="diagnose", task_name="maintenance.diagnose", task_args=["z"], dispatched_at=timezone.now()
    )
    Job.objects.filter(id=fresh.id).update(created_at=timezone.now() - timedelta(seconds=5))
    assert jobs_dispatch_pending() == 1  # to the test broker; the claim makes any duplicate a no-op
    assert Job.objects.get(id=fresh.id).dispatched_at is not None
    assert Job.objects.get(id=waiting.id).dispatched_at is None
    assert Job.objects.get(id=sent.id).dispatched_at == sent.dispatched_at


def test_a_transient_failure_hands_the_job_back_with_backoff_until_the_retries_are_spent(settings):
    settings.LWM_JOB_TRANSIENT_RETRIES, settings.LWM_JOB_RETRY_BACKOFF_SECONDS = 2, 3
    job = Job.objects.create(kind="diagnose", task_name="maintenance.diagnose", task_args=["x"])
    delays = []
    for _ in range(3):
        assert job_claim(job_id=job.id, worker="w1").value == "claimed"
        delays.append(job_release_for_retry(job_id=job.id, worker="w1", reason="refused", part="storage"))
    assert delays == [3, 6, None]
    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.RUNNING, 2)  # the caller now fails it with job:infra:*
    assert [e["stage"] for e in job.log].count("retry") == 2


def test_check_consistency_finalizes_a_version_left_behind_and_reports_a_missing_object(
    alice, client_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        body = _upload(client_for(alice), packages.build_table_model_package(name="drift")).json()
    version = LearnwareVersion.objects.get(job_id=body["job"])
    # Drift as an older release could leave it: the job failed, the version still validating.
    Job.objects.filter(id=body["job"]).update(
        status=JobStatus.FAILED, error={"code": "job:app:crashed", "message": "boom"}
    )
    LearnwareVersion.objects.filter(id=version.id).update(status=VersionStatus.VALIDATING)
    dry = consistency_check(repair=False, min_age_seconds=0)
    assert len(dry.findings["version-non-final-behind-final-job"]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        report = consistency_check(repair=True, min_age_seconds=0)
    assert report.repaired["version-non-final-behind-final-job"] == 1
    version.refresh_from_db()
    assert (
        version.status == VersionStatus.REJECTED and version.rejection_reasons[0]["code"] == "job:app:crashed"
    )
    assert consistency_check(repair=False, min_age_seconds=0).findings == {}


def test_an_upload_with_an_idempotency_key_is_created_once_and_replayed(alice, client_for):
    client = client_for(alice)
    data = packages.build_table_model_package(name="once")
    first = _upload(client, data, key="k-123")
    again = _upload(client, data, key="k-123")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert LearnwareVersion.objects.filter(learnware__name="once").count() == 1
    other = _upload(client, packages.build_table_model_package(name="other"), key="k-123")
    assert other.status_code == 409 and other.json()["error"]["code"] == "request:user:idempotency-key-reused"
    assert _upload(client, data, key="k-456").json()["version"] == 2  # a new key is a new request


def test_a_job_failed_by_the_infrastructure_shows_no_server_paths(settings, alice):
    from workers.base import JobTask

    settings.LWM_JOB_TRANSIENT_RETRIES = 0
    job = Job.objects.create(kind="diagnose", task_name="maintenance.diagnose", task_args=["x"])
    assert job_claim(job_id=job.id, worker="w1").value == "claimed"

    class ClaimHolder(JobTask):
        abstract = True
        worker_name = "w1"  # the worker that holds the claim

    exc = OSError(errno.ENOSPC, "No space left on device", "/var/lib/lwm/scratch/lwm-sandbox-1/model.pt")
    assert ClaimHolder()._infrastructure_failed(str(job.id), exc, "disk")["status"] == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error["code"] == "job:infra:disk-full"
    assert "No space left on device" in job.message and "/var/lib" not in job.message + str(job.error)
