"""Published torch.export versions are yanked by migration 0006: they are no longer run anywhere."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog, LearnwareVersion
from tests.marketplace.portal.factories import make_learnware

migration = importlib.import_module("marketplace.learnwares.migrations.0006_yank_torch_export_versions")


@pytest.mark.django_db
def test_published_torch_export_versions_are_yanked_with_a_reason_and_an_audit_entry(alice):
    export = make_learnware(alice, name="old-export", index=False)
    script = make_learnware(alice, name="script", index=False)
    pending = make_learnware(alice, name="pending-export", status=VersionStatus.PENDING_REVIEW, index=False)
    LearnwareVersion.objects.filter(id__in=[export.id, pending.id]).update(artifact_format="torch_export")
    LearnwareVersion.objects.filter(id=script.id).update(artifact_format="torchscript")

    migration.yank_torch_export(apps, None)

    export.refresh_from_db(), script.refresh_from_db(), pending.refresh_from_db()
    assert export.status == VersionStatus.YANKED and "unpickles" in export.yank_reason and export.yanked_at
    assert script.status == VersionStatus.PUBLISHED  # other formats untouched
    assert (
        pending.status == VersionStatus.PENDING_REVIEW
    )  # never published: the pipeline refuses it when it runs
    entry = AuditLog.objects.get(version=export)
    assert entry.action == "version.yanked" and entry.learnware_id == export.learnware_id
    assert not AuditLog.objects.filter(version=script).exists()
