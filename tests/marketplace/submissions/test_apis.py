"""The submission API: create (multipart, JSON with an RKME), limits, privacy, cancel, download, retention."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.services import job_finish
from marketplace.submissions.models import Submission
from marketplace.submissions.services import (
    submission_create,
    submission_package_save,
    submissions_purge_expired,
)
from specs import rkme_fit, rkme_to_json

pytestmark = pytest.mark.django_db

CSV = b"a,b\n1,2\n3,4\n5,6\n"


def _stored_names(prefix: str) -> set[str]:
    storage, names, stack = storages["default"], set(), [prefix]
    while stack:
        top = stack.pop()
        if not storage.exists(top):
            continue
        dirs, files = storage.listdir(top)
        names |= {f"{top}/{f}" for f in files}
        stack += [f"{top}/{d}" for d in dirs]
    return names


def _post_csv(client, content: bytes = CSV, **extra):
    return client.post(
        "/api/v1/submissions/", {"data": SimpleUploadedFile("rows.csv", content), **extra}, format="multipart"
    )


def test_multipart_create_answers_202_with_the_submission_and_its_job_and_stores_the_file_privately(
    alice, client_for
):
    response = _post_csv(client_for(alice), requirements=json.dumps({"max_modules": 2}), name="my task")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["submission"]["status"] == "pending" and body["job"]["status"] == "pending"
    assert body["submission"]["job"] == body["job"]["id"]
    assert body["submission"]["requirements"] == {"max_modules": 2}
    submission = Submission.objects.get(id=body["submission"]["id"])
    assert submission.data_format == "csv" and submission.data_sha256 == hashlib.sha256(CSV).hexdigest()
    assert submission.data_file.name.startswith(f"submissions/{alice.id}/{submission.id}/")
    with storages["default"].open(submission.data_file.name, "rb") as fh:
        assert fh.read() == CSV
    assert submission.job.task_name == "submissions.run" and submission.job.queue == "compute"


def test_json_create_with_a_client_rkme_is_accepted(alice, client_for):
    spec = rkme_fit(np.random.default_rng(0).normal(size=(40, 3)), 5, 0.5, random_state=0)
    response = client_for(alice).post(
        "/api/v1/submissions/", {"rkme": json.loads(rkme_to_json(spec))}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert response.json()["submission"]["data_format"] == "rkme"


def test_bad_requirements_are_refused_naming_the_field(alice, client_for):
    response = _post_csv(client_for(alice), requirements=json.dumps({"methods": ["magic"]}))
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("requirements.methods")
    assert not Submission.objects.exists()


@pytest.mark.parametrize("kind", [None, "model", "adapter"])
def test_an_adapter_asked_for_outside_model_selection_is_refused_by_name(alice, client_for, kind):
    requirements = {"adapter": True} | ({"kind": kind} if kind else {})
    response = _post_csv(client_for(alice), requirements=json.dumps(requirements))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "submission:user:adapter-needs-base-model"
    assert error["message"].startswith("requirements.adapter") and repr(kind or "model") in error["message"]
    assert not Submission.objects.exists()
    # adapter false asks for nothing: accepted, as without it
    assert _post_csv(client_for(alice), requirements=json.dumps({"adapter": False})).status_code == 202


def test_a_too_large_upload_is_refused_with_413_and_nothing_is_stored(alice, client_for, settings):
    settings.LWM_SUBMISSION_MAX_BYTES = 10
    before = _stored_names(f"submissions/{alice.id}")
    response = _post_csv(client_for(alice))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "submission:user:too-large"
    assert not Submission.objects.exists()
    assert _stored_names(f"submissions/{alice.id}") == before


def test_over_the_active_limit_answers_429_with_a_retry_hint_and_keeps_the_others(
    alice, client_for, settings
):
    settings.LWM_SUBMISSION_MAX_ACTIVE = 2
    settings.LWM_SUBMISSION_RETRY_AFTER = 42
    client = client_for(alice)
    assert [_post_csv(client).status_code for _ in range(2)] == [202, 202]
    refused = _post_csv(client)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "42"
    assert refused.json()["error"]["code"] == "submission:user:too-many-active"
    assert Submission.objects.filter(owner=alice).count() == 2
    job_finish(job_id=Submission.objects.filter(owner=alice).first().job_id, status=JobStatus.SUCCEEDED)
    assert _post_csv(client).status_code == 202  # a finished one frees a slot


def test_a_submission_is_invisible_to_other_users_and_to_anonymous_clients(alice, bob, client_for, api):
    submission_id = _post_csv(client_for(alice)).json()["submission"]["id"]
    other = client_for(bob)
    assert other.get("/api/v1/submissions/").json()["results"] == []
    for url in (f"/api/v1/submissions/{submission_id}/", f"/api/v1/submissions/{submission_id}/package"):
        assert other.get(url).status_code == 404
        assert api.get(url).status_code == 401
    assert other.post(f"/api/v1/submissions/{submission_id}/cancel/").status_code == 404
    mine = client_for(alice).get("/api/v1/submissions/").json()
    assert [s["id"] for s in mine["results"]] == [submission_id] and mine["count"] == 1


def test_cancel_stops_a_pending_submission_and_a_second_cancel_conflicts(alice, client_for):
    client = client_for(alice)
    submission_id = _post_csv(client).json()["submission"]["id"]
    cancelled = client.post(f"/api/v1/submissions/{submission_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/submissions/{submission_id}/cancel/")
    assert again.status_code == 409


def test_package_download_waits_for_the_package_then_serves_its_bytes(alice, client_for):
    client = client_for(alice)
    submission_id = _post_csv(client).json()["submission"]["id"]
    assert (
        client.get(f"/api/v1/submissions/{submission_id}/package").json()["error"]["code"]
        == "submission:user:package-not-ready"
    )
    submission_package_save(submission_id=submission_id, content=b"PK-fake-zip")
    response = client.get(f"/api/v1/submissions/{submission_id}/package")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"PK-fake-zip"
    assert response["X-Checksum-Sha256"] == hashlib.sha256(b"PK-fake-zip").hexdigest()
    assert client.get(f"/api/v1/submissions/{submission_id}/").json()["package_url"].endswith("/package")


def test_retention_deletes_old_finished_submissions_data_but_keeps_recent_and_running_ones(alice, settings):
    def make() -> Submission:
        s = submission_create(
            owner=alice,
            data_format="csv",
            data=ContentFile(CSV, name="d.csv"),
            labelled=ContentFile(b"a,b,label\n1,2,x\n", name="l.csv"),
            labelled_format="csv",
        )
        submission_package_save(submission_id=s.id, content=b"zip")
        return Submission.objects.get(id=s.id)

    old_done, old_running, recent_done = make(), make(), make()
    for s in (old_done, recent_done):
        job_finish(job_id=s.job_id, status=JobStatus.SUCCEEDED)
    Submission.objects.filter(id__in=[old_done.id, old_running.id]).update(
        created_at=old_done.created_at - timedelta(days=31)
    )
    Submission.objects.filter(id=old_done.id).update(results={"spec": {"key": "k"}})
    old_files = [old_done.data_file.name, old_done.labelled_file.name, old_done.package.name]
    storage = storages["default"]
    assert all(storage.exists(name) for name in old_files)
    assert submissions_purge_expired(retention_days=30) == 1
    old_done.refresh_from_db()
    assert old_done.data_deleted_at is not None and old_done.results == {"spec": {"key": "k"}}
    assert not any(storage.exists(name) for name in old_files)
    assert not old_done.data_file and not old_done.package
    for kept in (old_running, recent_done):
        kept.refresh_from_db()
        assert (
            kept.data_deleted_at is None
            and storage.exists(kept.data_file.name)
            and storage.exists(kept.package.name)
        )
