"""Probes and the 503 envelope, in-process against real endpoints (a closed port is a refused S3)."""

from __future__ import annotations

import socket
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.core.health import PARTS, health_check_register
from marketplace.learnwares.models import LearnwareVersion
from tests.support import packages

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused_s3(settings):
    """Default storage on an S3 endpoint whose port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "nowhere",
                "endpoint_url": f"http://127.0.0.1:{port}",
                "access_key": "x",
                "secret_key": "x",
                "region_name": "us-east-1",
            },
        },
    }
    from django.core.files.storage import storages

    storages._storages.pop("default", None)
    yield
    storages._storages.pop("default", None)


def test_livez_answers_without_touching_anything(client):
    response = client.get("/livez")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_anonymous_healthz_shows_the_status_only_and_staff_see_details(client, admin_user, settings):
    anonymous = client.get("/healthz").json()
    assert set(anonymous) == {"status"}
    settings.LWM_HEALTH_TOKEN = "s3cret"
    assert "checks" in client.get("/healthz", HTTP_X_HEALTH_TOKEN="s3cret").json()
    assert "checks" not in client.get("/healthz", HTTP_X_HEALTH_TOKEN="wrong").json()
    client.force_login(admin_user)
    assert set(client.get("/healthz").json()["checks"]) >= {
        "database",
        "broker",
        "worker",
        "storage",
        "index",
    }


def test_a_hanging_part_is_reported_timed_out_within_the_deadline(client, admin_user, settings):
    settings.LWM_HEALTH_CHECK_TIMEOUT = 0.3
    health_check_register("slow", lambda: time.sleep(3) or {"ok": True}, readiness=True)
    try:
        client.force_login(admin_user)
        start = time.monotonic()
        ready = client.get("/readyz")
        assert time.monotonic() - start < 1.0
        assert ready.status_code == 503 and ready.json()["checks"]["slow"] is False
        assert client.get("/healthz").json()["checks"]["slow"]["error"] == "timed out"
    finally:
        PARTS.pop("slow")


def test_storage_refusing_gives_json_503_with_retry_after_and_leaves_no_rows(alice, client_for, refused_s3):
    response = client_for(alice).post(
        "/api/v1/learnwares/",
        {"package": SimpleUploadedFile("p.zip", packages.build_table_model_package())},
        format="multipart",
    )
    assert response.status_code == 503 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "service:unavailable"
    assert response.json()["error"]["details"]["part"] == "storage"
    assert (
        response.json()["error"]["request_id"] == response["X-Request-ID"]
    )  # quoted, it finds the log lines
    assert int(response["Retry-After"]) > 0
    assert not LearnwareVersion.objects.exclude(learnware__owner__username="market").exists()  # 0009 made one


def test_readyz_is_503_when_storage_refuses(client, refused_s3):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"] == {"database": True, "storage": False}


def test_a_portal_page_shows_the_portals_own_503_page_when_storage_refuses(alice, client, refused_s3):
    client.force_login(alice)
    response = client.post(
        "/learnwares/new/", {"package": SimpleUploadedFile("p.zip", packages.build_table_model_package())}
    )
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    assert b"briefly unavailable" in response.content and b"Traceback" not in response.content
    assert not LearnwareVersion.objects.exclude(learnware__owner__username="market").exists()  # 0009 made one


@pytest.fixture
def redis_down(settings):
    """The cache on a Redis port nobody listens on (the production backend, failing open); changing
    CACHES through ``settings`` makes Django drop its cache handlers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "marketplace.core.cache.FailOpenRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    yield


def test_throttles_fail_open_when_the_cache_redis_is_down(alice, api, client_for, redis_down, caplog):
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "FailOpenRedisCache"
    login = api.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-pass-123", "name": "t"}, format="json"
    )
    assert login.status_code in (200, 201), login.json()  # the login throttle let it through
    data = SimpleUploadedFile("rows.csv", b"a,b,c\n1,2,3\n4,5,6\n")
    created = client_for(alice).post(
        "/api/v1/submissions/", {"data": data, "data_format": "csv"}, format="multipart"
    )
    assert created.status_code == 202, (
        created.json()
    )  # the submission throttle never turns the outage into a 500
    assert "cache unavailable" in caplog.text


def test_web_connections_carry_the_statement_timeout_and_commands_do_not(settings, monkeypatch):
    from django.db import connection

    from marketplace.core.db import PROCESS_ROLE, on_connection_created

    def timeout_after_connect(role: str) -> str:
        monkeypatch.setitem(PROCESS_ROLE, "role", role)
        on_connection_created(None, connection)  # what connection_created runs on a new connection
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    assert timeout_after_connect("web") == f"{settings.LWM_DB_STATEMENT_TIMEOUT_MS // 1000}s"
    assert timeout_after_connect("other") == "0"  # manage.py commands: LWM_WORKER_DB_STATEMENT_TIMEOUT_MS
