"""Reuse and download counters: a download through the API and an assembled task each count once,
concurrent increments are never lost, and the home page and cards show them."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.learnwares.services import learnware_downloaded
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_package_save
from tests.marketplace.portal.factories import make_learnware


def downloadable(owner, **kw) -> LearnwareVersion:
    version = make_learnware(owner, **kw)
    # The factory's package is b"zip-content"; the download checks the stored sha256 first.
    LearnwareVersion.objects.filter(id=version.id).update(
        artifact_sha256=hashlib.sha256(b"zip-content").hexdigest()
    )
    return version


@pytest.mark.django_db
def test_each_api_download_counts_once_and_shows_on_the_card(web, alice):
    version = downloadable(alice, name="counted")
    for _ in range(3):
        response = web.get(f"/api/v1/learnwares/{version.learnware_id}/versions/1/download")
        assert response.status_code == 200
        b"".join(response.streaming_content)
    assert web.get("/api/v1/learnwares/999999/versions/1/download").status_code == 404
    assert Learnware.objects.get(id=version.learnware_id).download_count == 3
    assert web.get(f"/api/v1/learnwares/{version.learnware_id}/").json()["download_count"] == 3
    home = web.get("/").content.decode()
    reused = home[home.index('id="reused-h"') :]
    assert "counted" in reused and "3 downloads" in reused


@pytest.mark.django_db
def test_an_assembled_task_counts_one_reuse_per_member_even_when_the_stage_reruns(alice, bob):
    a, b, other = (
        make_learnware(alice, name="a"),
        make_learnware(alice, name="b"),
        make_learnware(alice, name="c"),
    )
    results = {"assemble": {"key": "k", "members": [{"version_id": a.id}, {"version_id": b.id}]}}
    submission = Submission.objects.create(owner=bob, data_format="csv", results=results, name="task")
    submission_package_save(submission_id=submission.id, content=b"package-bytes")
    submission_package_save(submission_id=submission.id, content=b"package-bytes")  # a retried stage
    counts = dict(
        Learnware.objects.filter(id__in=[a.learnware_id, b.learnware_id, other.learnware_id]).values_list(
            "name", "reuse_count"
        )
    )
    assert counts == {"a": 1, "b": 1, "c": 0}


@pytest.mark.django_db(transaction=True)
def test_concurrent_downloads_lose_no_increment(alice):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    version = make_learnware(alice, index=False)

    def hit(_: int) -> None:
        try:
            learnware_downloaded(learnware_id=version.learnware_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(hit, range(60)))
    assert Learnware.objects.get(id=version.learnware_id).download_count == 60
