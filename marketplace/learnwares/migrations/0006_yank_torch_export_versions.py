"""Yank published torch.export (.pt2) versions: they are no longer run anywhere.

``torch.export.load`` unpickles parts of a ``.pt2`` with full pickle (docs/security.md), so the
sandbox, the submissions and the client refuse the format. A version published before that would
otherwise still be found by search and then fail every submission that picked it. Yanking keeps
the row and its file for audit and takes it out of search and downloads (as ``version_yank`` does).
"""

from django.db import migrations
from django.utils import timezone

REASON = ("torch.export (.pt2) archives are no longer run: their loader unpickles with full pickle; "
          "republish the model as TorchScript or ONNX (docs/security.md)")


def yank_torch_export(apps, schema_editor):
    Version = apps.get_model("learnwares", "LearnwareVersion")
    AuditLog = apps.get_model("learnwares", "AuditLog")
    versions = Version.objects.filter(artifact_format="torch_export", status="published")
    pairs = list(versions.values_list("id", "learnware_id"))
    versions.update(status="yanked", yanked_at=timezone.now(), yank_reason=REASON)
    AuditLog.objects.bulk_create(AuditLog(action="version.yanked", version_id=version_id, learnware_id=learnware_id,
                                          data={"reason": REASON, "by": "migration"})
                                 for version_id, learnware_id in pairs)


class Migration(migrations.Migration):
    dependencies = [("learnwares", "0005_learnware_download_count")]
    operations = [migrations.RunPython(yank_torch_export, migrations.RunPython.noop)]
