"""Shared fixtures: a named cast of users, API clients, and the real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.support.services import RUNNING_WORKERS, S3Endpoint, WorkerProcess, start_s3, worker_env


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: uses a real worker process / broker / S3 endpoint")
    config.addinivalue_line("markers", "browser: drives the portal in a real Chromium")


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-pass-123")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-pass-123")


@pytest.fixture
def admin_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for():
    """``client_for(user)``: an APIClient authenticated as ``user`` with a real API token."""
    from marketplace.accounts.services import api_token_create

    def make(user: Any) -> APIClient:
        _, key = api_token_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = start_s3()
    yield endpoint
    endpoint.process.terminate()
    endpoint.process.wait(10)


@pytest.fixture
def s3_storage(s3_endpoint: S3Endpoint, settings: Any) -> S3Endpoint:
    """Route Django's default storage to the S3 endpoint for this test."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_endpoint.storage_settings()}
    return s3_endpoint


def _make_worker(tmp: Path, s3: S3Endpoint, name: str) -> WorkerProcess:
    return WorkerProcess(env=worker_env(s3.env), log_path=tmp / f"{name}.log")


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: Any,
    django_db_blocker: Any,
    s3_endpoint: S3Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """One real worker for the session, on the test database, the test broker and S3."""
    with django_db_blocker.unblock():
        worker = _make_worker(tmp_path_factory.mktemp("workers"), s3_endpoint, "session-worker").start()
    yield worker
    worker.stop()


@pytest.fixture
def own_worker(django_db_setup: Any, s3_endpoint: S3Endpoint, tmp_path: Path) -> Iterator[WorkerProcess]:
    """The only worker during this test, which it may stop or kill; call ``.start()`` in the test.

    Other running workers are stopped first (so none of them picks up the test's task
    or answers /healthz) and started again afterwards."""
    paused = list(RUNNING_WORKERS)
    for other in paused:
        other.stop()
    worker = _make_worker(tmp_path, s3_endpoint, "own-worker")
    yield worker
    worker.stop(kill=True)
    for other in paused:
        other.start()
