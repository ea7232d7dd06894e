"""Publishing on real services: API -> S3 -> broker -> worker process -> sandbox -> job row."""

from __future__ import annotations

import hashlib
import io
import zipfile

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.jobs.choices import TERMINAL_STATES, JobStatus
from marketplace.jobs.models import Job
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog, LearnwareVersion, Specification
from tests.support import packages
from tests.support.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TEXTS = [
    "the market rallied on strong earnings",
    "the striker scored twice in the final",
    "a new phone chip doubles battery life",
    "parliament passed the budget vote",
] * 3


def upload(client, data: bytes, url: str = "/api/v1/learnwares/"):
    return client.post(
        url,
        {"package": SimpleUploadedFile("package.zip", data, content_type="application/zip")},
        format="multipart",
    )


def finished(job_id: str, timeout: float = 180.0) -> Job:
    return wait_for(lambda: (j := Job.objects.get(id=job_id)).status in TERMINAL_STATES and j, timeout)


def bucket_keys(s3) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=s3.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])]


def zip_members(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {n: archive.read(n) for n in archive.namelist()}


HAPPY = {
    "table-client-rkme": (
        lambda: packages.build_table_model_package(columns=["x1", "x2", "x3"], name="table-rkme"),
        None,
    ),
    "table-sample": (
        lambda: packages.build_table_model_package(columns=["s1", "s2"], sample="csv", name="table-sample"),
        "sample.csv",
    ),
    "image-sample": (lambda: packages.build_image_model_package(sample="png", name="image-model"), "sample/"),
    "text-sample": (
        lambda: packages.build_text_model_package(sample=TEXTS, name="text-model"),
        "sample.jsonl",
    ),
    "lora-adapter": (lambda: packages.build_lora_adapter_package(name="minilm-lora"), None),
}


@pytest.mark.parametrize("case", sorted(HAPPY))
def test_a_package_is_published_with_spec_fingerprints_and_index_entry_and_downloads_intact(
    case, celery_worker, s3_storage, alice, client_for
):
    from marketplace.search.models import IndexChange

    build, sample = HAPPY[case]
    data = build()
    client = client_for(alice)
    response = upload(client, data)
    assert response.status_code == 202, response.json()
    body = response.json()
    job = finished(body["job"])
    assert job.status == JobStatus.SUCCEEDED, (job.message, job.error)

    version = LearnwareVersion.objects.get(learnware_id=body["learnware"], number=body["version"])
    assert version.status == VersionStatus.PUBLISHED
    spec = Specification.objects.get(version=version)
    assert spec.probe_fingerprint is not None and spec.card_embedding is not None
    assert (spec.arrow_prototypes is not None) == (case == "lora-adapter")
    assert spec.computed_from == ("sample" if sample else "client")
    assert IndexChange.objects.filter(key=spec.feature_space.key, version_id=version.id).exists()

    download = client.get(f"/api/v1/learnwares/{body['learnware']}/versions/{body['version']}/download")
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert download["X-Checksum-SHA256"] == hashlib.sha256(content).hexdigest() == version.artifact_sha256
    if sample is None:
        assert content == data
    else:  # the sample is gone; every other file is byte-identical
        kept = {n: b for n, b in zip_members(data).items() if not n.startswith(sample)}
        assert zip_members(content) == kept
        assert len(bucket_keys(s3_storage)) == len(set(bucket_keys(s3_storage)))
        assert not any(version.upload_sha256[:16] in k for k in bucket_keys(s3_storage))


@pytest.mark.parametrize("case", sorted(packages.FAILURES))
def test_a_bad_package_is_rejected_with_a_named_reason_and_leaves_nothing_behind(
    case, celery_worker, s3_storage, alice, client_for
):
    build, code = packages.FAILURES[case]
    client = client_for(alice)
    good = upload(client, packages.build_table_model_package(name=f"keeper-{case}")).json()
    assert finished(good["job"]).status == JobStatus.SUCCEEDED
    before = set(bucket_keys(s3_storage))
    first = LearnwareVersion.objects.get(learnware_id=good["learnware"], number=1)

    response = upload(client, build(), url=f"/api/v1/learnwares/{good['learnware']}/versions/")
    if case in packages.SYNC_FAILURES:
        assert response.status_code in (400, 409), response.json()
        assert response.json()["error"]["code"] == code
    else:
        assert response.status_code == 202, response.json()
        job = finished(response.json()["job"])
        assert job.status == JobStatus.REJECTED and job.error["code"] == code, job.error
        version = LearnwareVersion.objects.get(
            learnware_id=good["learnware"], number=response.json()["version"]
        )
        assert version.status == VersionStatus.REJECTED
        assert version.rejection_reasons[0]["code"] == code and version.rejection_reasons[0]["message"]
        assert AuditLog.objects.filter(version=version, action="version.rejected").count() == 1
    assert set(bucket_keys(s3_storage)) == before  # nothing orphaned
    untouched = LearnwareVersion.objects.get(id=first.id)
    assert (untouched.status, untouched.artifact_sha256, untouched.package.name) == (
        VersionStatus.PUBLISHED,
        first.artifact_sha256,
        first.package.name,
    )


def test_a_worker_killed_mid_publish_leaves_it_rerunnable_and_it_publishes_once(
    own_worker, s3_storage, alice, client_for
):
    from marketplace.search.models import IndexChange

    own_worker.start()
    body = upload(
        client_for(alice),
        packages.build_table_model_package(columns=["k1", "k2"], sample="csv", name="killed"),
    ).json()
    wait_for(
        lambda: Job.objects.filter(id=body["job"], status=JobStatus.RUNNING).exists(),
        timeout=60,
        interval=0.05,
    )

    own_worker.stop(kill=True)  # SIGKILL: no acknowledgement, no clean-up
    assert Job.objects.get(id=body["job"]).status in (JobStatus.RUNNING, JobStatus.SUCCEEDED)
    own_worker.start()
    job = finished(body["job"], timeout=240)
    assert job.status == JobStatus.SUCCEEDED, job.message
    version = LearnwareVersion.objects.get(learnware_id=body["learnware"], number=body["version"])
    assert version.status == VersionStatus.PUBLISHED
    assert Specification.objects.filter(version=version).count() == 1
    assert AuditLog.objects.filter(version=version, action="version.published").count() == 1
    space = Specification.objects.get(version=version).feature_space.key
    assert IndexChange.objects.filter(key=space, version_id=version.id).count() == 1
    assert len([k for k in bucket_keys(s3_storage) if f"learnwares/{body['learnware']}/" in k]) == 1
