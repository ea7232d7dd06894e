"""The admin console: a review page per pending version (approve / reject with a reason, audited),
a banner when review is off, manifests and checks as tables, and a package link that downloads."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog, LearnwareVersion
from tests.marketplace.portal.factories import make_learnware

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def pending(owner, name: str) -> LearnwareVersion:
    """A checked version with its specification, waiting for a reviewer (as the publish pipeline leaves
    it)."""
    version = make_learnware(owner, name=name, index=False)
    LearnwareVersion.objects.filter(id=version.id).update(
        status=VersionStatus.PENDING_REVIEW, published_at=None
    )
    version.refresh_from_db()
    return version


def test_review_page_shows_the_version_and_approve_publishes_it(staff, alice, admin_user):
    version = pending(alice, "waiting")
    listing = staff.get("/admin/learnwares/learnwareversion/?status__exact=pending_review").content.decode()
    url = f"/admin/learnwares/learnwareversion/{version.id}/review/"
    assert url in listing
    page = staff.get(url).content.decode()
    assert (
        "waiting v1" in page
        and "<th>input</th>" in page
        and "passed manifest" in page
        and "Approve and publish" in page
    )
    assert "RKME of" in page  # the specification's projection
    response = staff.post(url, {"approve": "1", "reason": "looks fine"})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == VersionStatus.PUBLISHED and version.reviewed_by == admin_user
    assert AuditLog.objects.filter(version=version, actor=admin_user).exists()


def test_reject_needs_a_reason_and_keeps_it_in_the_audit_log(staff, alice, admin_user):
    version = pending(alice, "dubious")
    url = f"/admin/learnwares/learnwareversion/{version.id}/review/"
    page = staff.post(url, {"reject": "1", "reason": " "})
    assert page.status_code == 200 and "errornote" in page.content.decode()
    assert LearnwareVersion.objects.get(id=version.id).status == VersionStatus.PENDING_REVIEW
    assert (
        staff.post(url, {"reject": "1", "reason": "the card promises more than the checks show"}).status_code
        == 302
    )
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED and "promises more" in version.review_note
    assert AuditLog.objects.filter(version=version, actor=admin_user).exists()


def test_the_queue_says_when_review_is_off(staff, settings):
    settings.LWM_REVIEW_REQUIRED = False
    assert "Review is off" in staff.get("/admin/learnwares/learnwareversion/", follow=True).content.decode()
    settings.LWM_REVIEW_REQUIRED = True
    assert "Review is off" not in staff.get("/admin/learnwares/learnwareversion/").content.decode()


def test_the_version_page_links_a_package_that_downloads(staff, alice):
    version = make_learnware(alice, name="linked")
    LearnwareVersion.objects.filter(id=version.id).update(
        artifact_sha256=hashlib.sha256(b"zip-content").hexdigest()
    )
    page = staff.get(f"/admin/learnwares/learnwareversion/{version.id}/change/").content.decode()
    link = f"/api/v1/learnwares/{version.learnware_id}/versions/1/download"
    assert f'href="{link}"' in page and "<th>output</th>" in page
    response = staff.get(link)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"zip-content"


def test_a_refused_upload_leaves_an_audit_entry(web_for, alice):
    from tests.support import packages

    response = web_for(alice).post(
        "/learnwares/new/", {"package": SimpleUploadedFile("bad.zip", packages.corrupt_zip())}
    )
    assert response.status_code == 400
    entry = AuditLog.objects.get(action="upload.refused")
    assert entry.actor == alice and entry.data["code"].startswith("upload:user:")
    assert entry.data["sha256"] == hashlib.sha256(packages.corrupt_zip()).hexdigest()
