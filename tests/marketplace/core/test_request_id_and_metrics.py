"""X-Request-ID in and out (headers, error bodies, log lines) and the protected /metrics, in-process."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from marketplace.core import logs

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines() -> Iterator[list[dict]]:
    """Every line the root logger writes during the test, as the production JSON formatter renders it."""
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


def test_a_well_formed_request_id_is_echoed_and_carried_by_the_access_line(client, json_lines):
    response = client.get("/api/v1/learnwares/", HTTP_X_REQUEST_ID="lb-7f3a.01:x")
    assert response.status_code == 200 and response["X-Request-ID"] == "lb-7f3a.01:x"
    access = [line for line in json_lines if line["logger"] == "marketplace.request"]
    assert len(access) == 1
    assert access[0]["request_id"] == "lb-7f3a.01:x" and access[0]["route"] == "learnware-list"
    assert access[0]["status"] == 200 and access[0]["method"] == "GET" and access[0]["seconds"] >= 0
    # Probes answer every few seconds: their successes are not logged at INFO.
    assert client.get("/livez")["X-Request-ID"]
    assert [line["route"] for line in json_lines if line["logger"] == "marketplace.request"] == [
        "learnware-list"
    ]


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "inject\nfake line", "ünï"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(client, incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    first, second = client.get("/livez", **headers), client.get("/livez", **headers)
    assert first["X-Request-ID"] != second["X-Request-ID"]
    for response in (first, second):
        assert len(response["X-Request-ID"]) == 32 and int(response["X-Request-ID"], 16) >= 0
        assert logs.current("request_id") is None  # unbound once the request is answered


def test_api_error_bodies_carry_the_request_id_and_so_do_their_log_lines(alice, client_for, json_lines):
    client = client_for(alice)
    missing = client.get(f"/api/v1/jobs/{uuid.uuid4()}/", HTTP_X_REQUEST_ID="trace-404")
    assert missing.status_code == 404 and missing.json()["error"]["request_id"] == "trace-404"
    invalid = client.post("/api/v1/submissions/", {}, format="multipart", HTTP_X_REQUEST_ID="trace-400")
    assert invalid.status_code == 400
    assert (
        invalid.json()["error"]["code"] == "input:user:invalid"
        and invalid.json()["error"]["request_id"] == "trace-400"
    )
    unrouted = client.get("/api/v1/no-such-thing/")
    assert unrouted.status_code == 404 and len(unrouted["X-Request-ID"]) == 32
    # Django's own 4xx warnings are logged after the middlewares return: they still name the request.
    for line in json_lines:
        assert line.get("request_id"), line
    assert {"trace-404", "trace-400"} <= {
        line["request_id"] for line in json_lines if line["logger"] == "django.request"
    }


def test_metrics_refuses_a_scraper_without_credentials(client, settings):
    settings.LWM_METRICS_TOKEN = "scrape-secret"
    settings.LWM_METRICS_ALLOWED_IPS = []
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": "scrape-secret"},
        {"HTTP_AUTHORIZATION": "Basic scrape-secret"},
    ):
        response = client.get("/metrics", **headers)
        assert response.status_code == 403, headers
        assert (
            response.json()["error"]["code"] == "metrics:user:forbidden" and b"lwm_" not in response.content
        )
    settings.LWM_METRICS_TOKEN = ""
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    )  # no token set: nobody by token


def test_metrics_answer_the_token_or_an_allowed_address_in_prometheus_format(client, settings):
    settings.LWM_METRICS_TOKEN = "scrape-secret"
    client.get("/livez")
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert 'lwm_http_requests_total{method="GET",route="livez",status="200"}' in text
    # Job and stage series exist once a worker observed one (multiprocess mode writes no unobserved series):
    # tests/integration/test_observability.py scrapes them after a real publish and submission.
    assert "# TYPE lwm_http_request_duration_seconds histogram" in text
    assert 'lwm_queue_depth{queue="compute"}' in text and "lwm_broker_up 1.0" in text
    settings.LWM_METRICS_TOKEN = ""
    settings.LWM_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.5").status_code == 403
    # X-Forwarded-For counts only behind trusted proxies: a client cannot claim an allowed address.
    assert (
        client.get("/metrics", REMOTE_ADDR="192.168.1.5", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403
    )


def test_request_counts_are_labelled_by_route_name_not_by_path(client, settings):
    settings.LWM_METRICS_TOKEN = "t"
    for _ in range(2):
        client.get(f"/api/v1/jobs/{uuid.uuid4()}/")
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    assert 'route="job-detail"' in text and "/api/v1/jobs/" not in text
