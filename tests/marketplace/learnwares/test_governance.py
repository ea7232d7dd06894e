"""Review, yank, ban and purge: state changes guarded, indexed, audited, files cleaned."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from marketplace.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from marketplace.learnwares import services
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog
from marketplace.search.models import IndexChange
from tests.support import packages

pytestmark = pytest.mark.django_db


def actions(version):
    return list(AuditLog.objects.filter(version=version).order_by("id").values_list("action", flat=True))


def test_with_review_required_a_version_waits_and_an_admin_approves_it(settings, alice, admin_user, publish):
    settings.LWM_REVIEW_REQUIRED = True
    lw, version = publish(alice, packages.build_table_model_package(name="reviewed"))
    assert version.status == VersionStatus.PENDING_REVIEW
    assert not IndexChange.objects.filter(version_id=version.id).exists()
    services.version_approve(version=version, actor=admin_user, note="looks fine")
    version.refresh_from_db()
    assert (version.status, version.reviewed_by) == (VersionStatus.PUBLISHED, admin_user)
    assert IndexChange.objects.filter(version_id=version.id).exists()
    assert actions(version)[-2:] == ["version.pending_review", "version.approved"]
    with pytest.raises(Conflict):
        services.version_approve(version=version, actor=admin_user)


def test_a_reviewer_rejection_needs_a_reason_and_deletes_the_file(settings, alice, admin_user, publish):
    settings.LWM_REVIEW_REQUIRED = True
    _, version = publish(alice, packages.build_table_model_package(name="refused"))
    name = version.package.name
    with pytest.raises(ValidationFailed):
        services.version_review_reject(version=version, actor=admin_user, reason="  ")
    services.version_review_reject(version=version, actor=admin_user, reason="licence does not allow reuse")
    version.refresh_from_db()
    assert (
        version.status == VersionStatus.REJECTED
        and version.rejection_reasons[0]["message"] == "licence does not allow reuse"
    )
    assert not default_storage.exists(name)
    assert actions(version)[-1] == "version.rejected"


def test_a_yanked_version_leaves_the_index_and_cannot_be_downloaded(
    alice, bob, admin_user, client_for, publish
):
    lw, version = publish(alice, packages.build_table_model_package(name="yankee"))
    publish(alice, packages.build_table_model_package(name="yankee", seed=1), learnware=lw)
    before = IndexChange.objects.filter(version_id=version.id).count()
    services.version_yank(version=version, actor=admin_user, reason="leaks data")
    assert IndexChange.objects.filter(version_id=version.id).count() > before
    assert client_for(bob).get(f"/api/v1/learnwares/{lw.id}/versions/1/download").status_code == 404
    listed = client_for(bob).get(f"/api/v1/learnwares/{lw.id}/versions/").json()["results"]
    assert [(v["number"], v["status"], v["yank_reason"]) for v in listed] == [
        (2, "published", ""),
        (1, "yanked", "leaks data"),
    ]
    assert actions(version)[-1] == "version.yanked"


def test_a_banned_user_cannot_publish_and_their_waiting_versions_are_rejected(
    settings, alice, admin_user, publish
):
    settings.LWM_REVIEW_REQUIRED = True
    _, version = publish(alice, packages.build_table_model_package(name="banned"))
    services.user_ban(user=alice, actor=admin_user, reason="spam")
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED and not alice.is_active
    assert AuditLog.objects.filter(action="user.banned", data__username="alice").count() == 1
    with pytest.raises(PermissionDenied):
        services.learnware_upload(user=alice, data=packages.build_table_model_package(name="again"))


def test_purge_removes_a_deleted_learnwares_files_and_rows_but_keeps_the_audit(alice, admin_user, publish):
    lw, version = publish(alice, packages.build_table_model_package(name="purged"))
    name = version.package.name
    with pytest.raises(Conflict):
        services.learnware_purge(learnware=lw, actor=admin_user)
    services.learnware_delete(learnware=lw, user=alice)
    services.learnware_purge(learnware=lw, actor=admin_user)
    assert not default_storage.exists(name)
    assert AuditLog.objects.filter(action="learnware.purged", data__name="purged").exists()
    assert AuditLog.objects.filter(action="version.published").exists()  # history survives the rows


def test_the_register_base_models_command_is_idempotent():
    from django.core.management import call_command

    from marketplace.learnwares.models import BaseModel

    call_command("register_base_models")
    call_command("register_base_models")
    assert list(BaseModel.objects.values_list("key", "hidden_size")) == [("all-minilm-l6-v2", 384)]
