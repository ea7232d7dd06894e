"""Publish packages in-process: the upload service, then the pipeline (real sandbox, no worker)."""

from __future__ import annotations

import pytest

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.services import learnware_upload
from workers.pipelines.publish import publish_version


@pytest.fixture(autouse=True)
def _small_sandbox(settings):
    settings.LWM_SANDBOX_CPU_SECONDS = 10  # as marketplace/settings/test.py: base models need 2-3 s of CPU
    settings.LWM_SANDBOX_WALL_SECONDS = 20
    settings.LWM_SANDBOX_MEMORY_MB = 1024
    settings.LWM_RKME_K = 10


@pytest.fixture
def publish():
    """``publish(user, data, learnware=None)`` -> (learnware, version) after the pipeline ran."""

    def run(user, data, learnware=None):
        lw, version, _ = learnware_upload(user=user, data=data, learnware=learnware)
        try:
            publish_version(version_id=version.id, report=lambda *a, **k: None)
        except ValidationFailed:
            pass
        version.refresh_from_db()
        lw.refresh_from_db()
        return lw, version

    return run
