from __future__ import annotations

import pytest

from marketplace.search import store


@pytest.fixture(autouse=True)
def fresh_index_cache(settings, tmp_path):
    """Each test starts with no in-process index and its own media folder for snapshots."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    store.forget()
    yield
    store.forget()
