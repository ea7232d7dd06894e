"""The registered MiniLM becomes an ordinary ``kind: base_model`` learnware (issue 22).

Creates the ``market`` system user, the MiniLM learnware (public, with a card) and its published
version 1, whose files ship with the product (no package), and links the registry row to it. Why
this shape: ``marketplace.learnwares.services.registered``. Reversing unlinks and deletes them.
"""

from django.conf import settings
from django.db import migrations

from marketplace.learnwares.services.registered import MARKET_USERNAME, MINILM_SLUG, minilm_learnware_ensure


def forward(apps, schema_editor):
    minilm_learnware_ensure(
        user_model=apps.get_model(*settings.AUTH_USER_MODEL.split(".")),
        learnware_model=apps.get_model("learnwares", "Learnware"),
        version_model=apps.get_model("learnwares", "LearnwareVersion"),
        base_model=apps.get_model("learnwares", "BaseModel"),
    )


def backward(apps, schema_editor):
    Learnware = apps.get_model("learnwares", "Learnware")
    Learnware.objects.filter(owner__username=MARKET_USERNAME, slug=MINILM_SLUG).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("learnwares", "0008_base_model_kind"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(forward, backward)]
