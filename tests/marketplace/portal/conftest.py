from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from marketplace.search import store


@pytest.fixture(autouse=True)
def isolated(settings: Any, tmp_path: Any) -> Any:
    """Own media folder, no in-process index and an empty cache (the login limiter) per test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    store.forget()
    cache.clear()
    yield
    store.forget()
    cache.clear()


@pytest.fixture
def web() -> Client:
    return Client()


@pytest.fixture
def web_for():
    """``web_for(user)``: a browser-like client logged in as ``user``."""

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
