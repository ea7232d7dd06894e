"""Re-key table spaces by their column set, not their order (columns are matched by name).

Spaces holding the same columns in another order are merged into the oldest; the search
indexes of every changed space are dropped and rebuilt from the database on first use.
See ``marketplace.learnwares.services.rekey``.
"""

from django.db import migrations


def rekey(apps, schema_editor):
    from marketplace.learnwares.services.rekey import rekey_table_spaces

    rekey_table_spaces(
        FeatureSpace=apps.get_model("learnwares", "FeatureSpace"),
        Specification=apps.get_model("learnwares", "Specification"),
        Learnware=apps.get_model("learnwares", "Learnware"),
        Submission=apps.get_model("submissions", "Submission"),
        IndexState=apps.get_model("search", "IndexState"),
        IndexChange=apps.get_model("search", "IndexChange"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("learnwares", "0006_yank_torch_export_versions"),
        ("submissions", "0002_data_format_images"),
        ("search", "0003_index_state_pruned_generation"),
    ]
    # Not reversible to the old keys without the old orders' hashes; going back leaves the new keys.
    operations = [migrations.RunPython(rekey, migrations.RunPython.noop)]
