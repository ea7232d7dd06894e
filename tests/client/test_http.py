"""The HTTP layer against a real (scripted) server: typed errors by cause, retries, backoff, Retry-After."""

from __future__ import annotations

import socket

import pytest
from lwm_client import errors
from lwm_client.client import Client
from lwm_client.config import Config
from lwm_client.http import Transport

from tests.client.scripted_server import ScriptedServer


def err(code: str, message: str = "m", **details) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def transport(url: str, sleeps: list[float], **kw) -> Transport:
    return Transport(Config(url=url, token="lwm_test", timeout=2.0), sleep=sleeps.append, **kw)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "input:user:invalid", errors.BadRequest),
        (400, "upload:user:path-traversal", errors.RejectedUpload),
        (401, "not_authenticated", errors.Unauthorized),
        (403, "permission_denied", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "submission:user:package-not-ready", errors.Conflict),
        (413, "submission:user:too-large", errors.BadRequest),
        (500, "download:app:checksum-mismatch", errors.ServerError),
    ],
)
def test_each_status_becomes_its_error_with_the_servers_code_and_no_retry(server, status, code, cls):
    server.push(status, err(code, "the reason", field="x"))
    sleeps: list[float] = []
    with pytest.raises(cls) as caught:
        transport(server.url, sleeps).json("GET", "things/")
    assert (caught.value.code, caught.value.message, caught.value.status) == (code, "the reason", status)
    assert caught.value.details == {"field": "x"}
    assert len(server.requests) == 1 and sleeps == []


def test_rejected_upload_carries_its_reasons(server):
    server.push(400, err("upload:user:symlink", "'model.pt' is a symbolic link", file="model.pt"))
    with pytest.raises(errors.RejectedUpload) as caught:
        transport(server.url, []).json("POST", "learnwares/")
    assert caught.value.reasons == [
        {
            "code": "upload:user:symlink",
            "message": "'model.pt' is a symbolic link",
            "details": {"file": "model.pt"},
        }
    ]


def test_token_is_sent_as_bearer_and_paths_are_under_api_v1(server):
    server.push(200, {"ok": 1})
    assert transport(server.url, []).json("GET", "me/") == {"ok": 1}
    method, path, headers = server.requests[0]
    assert (method, path, headers["Authorization"]) == ("GET", "/api/v1/me/", "Bearer lwm_test")


def test_429_waits_retry_after_then_succeeds(server):
    server.push(429, err("throttled"), Retry_After="2").push(200, {"done": True})
    sleeps: list[float] = []
    assert transport(server.url, sleeps).json("GET", "x/") == {"done": True}
    assert sleeps == [2.0] and len(server.requests) == 2


def test_429_with_a_long_retry_after_raises_rate_limited_at_once(server):
    server.push(429, err("submission:user:too-many-active"), Retry_After="3600")
    sleeps: list[float] = []
    with pytest.raises(errors.RateLimited) as caught:
        transport(server.url, sleeps, max_retry_after=60).json("POST", "submissions/")
    assert caught.value.retry_after == 3600.0 and caught.value.code == "submission:user:too-many-active"
    assert sleeps == [] and len(server.requests) == 1


def test_gateway_errors_are_retried_with_growing_backoff_then_raised_as_transient(server):
    for _ in range(3):
        server.push(503, b"<html>upstream down</html>", Content_Type="text/html")
    sleeps: list[float] = []
    with pytest.raises(errors.TransientError) as caught:
        transport(server.url, sleeps, max_retries=2, backoff=1.0).json("GET", "x/")
    assert caught.value.status == 503 and len(server.requests) == 3
    # jittered exponential backoff: attempt i waits in [0.5, 1] * 2**i seconds
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_gateway_error_then_success_returns_the_success(server):
    server.push(502, b"bad gateway").push(504, b"timeout").push(200, {"n": 3})
    sleeps: list[float] = []
    assert transport(server.url, sleeps).json("GET", "x/") == {"n": 3}
    assert len(sleeps) == 2


def test_a_post_is_not_retried_after_a_502_the_server_may_have_acted_on(server):
    server.push(502, b"bad gateway").push(200, {})
    with pytest.raises(errors.TransientError):
        transport(server.url, []).json("POST", "learnwares/")
    assert len(server.requests) == 1


def test_a_post_with_an_idempotency_key_is_retried_after_a_502_with_the_same_key(server):
    server.push(502, b"bad gateway").push(
        503, err("service:unavailable", part="storage"), Retry_After="3"
    ).push(202, {"job": "j"})
    sleeps: list[float] = []
    assert transport(server.url, sleeps).json("POST", "learnwares/", idempotency_key="k-1") == {"job": "j"}
    assert [h["Idempotency-Key"] for _, _, h in server.requests] == ["k-1", "k-1", "k-1"]
    assert len(sleeps) == 2 and sleeps[1] == 3.0  # the 503's Retry-After is honoured


def test_connection_refused_is_retried_then_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(errors.TransientError) as caught:
        transport(f"http://127.0.0.1:{port}", sleeps, max_retries=2).json("GET", "x/")
    assert caught.value.code == "http:connection" and len(sleeps) == 2


def test_a_server_that_never_answers_times_out_as_transient():
    with socket.socket() as sock:  # listens, never accepts: the request hangs until the timeout
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        t = Transport(Config(url=url, token=None, timeout=0.3), max_retries=1, sleep=lambda s: None)
        with pytest.raises(errors.TransientError) as caught:
            t.json("GET", "x/")
    assert caught.value.code == "http:timeout"


def test_download_with_a_wrong_checksum_raises_integrity_error_and_leaves_no_file(
    server, tmp_path, monkeypatch
):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "cfg.json"))
    version = {"number": 1, "status": "published", "artifact_sha256": "0" * 64}
    server.push(200, version).push(
        200, b"package bytes", X_Checksum_SHA256="0" * 64, Content_Type="application/zip"
    )
    client = Client(server.url, "lwm_x")
    with pytest.raises(errors.IntegrityError):
        client.download(7, 1, dest=tmp_path)
    assert list(tmp_path.glob("*.zip*")) == []


def test_download_with_the_right_checksum_writes_the_file(server, tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "cfg.json"))
    body = b"package bytes"
    sha = hashlib.sha256(body).hexdigest()
    server.push(200, {"number": 1, "status": "published", "artifact_sha256": sha}).push(
        200, body, X_Checksum_SHA256=sha
    )
    dl = Client(server.url, "lwm_x").download(7, 1, dest=tmp_path)
    assert dl.path.read_bytes() == body and dl.sha256 == sha and dl.size == len(body)


def test_a_text_model_whose_base_cannot_be_seen_still_downloads_and_refuses_raw_texts(
    server, tmp_path, monkeypatch
):
    """``Client.download`` fetches a text model's published base (``lwm_client.model_bases``); when the market
    shows no such base the model still downloads, nothing is recorded, and raw texts are refused by name."""
    import hashlib

    from lwm_client.errors import ConfigError
    from lwm_client.model_bases import recorded_base
    from lwm_client.predict import Predictor

    from tests.support.packages import build_text_model_package

    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "cfg.json"))
    body = build_text_model_package(width=32, manifest={"base_model": "bob-hidden-bert"})
    sha = hashlib.sha256(body).hexdigest()
    server.push(200, {"number": 1, "status": "published", "artifact_sha256": sha})
    server.push(200, body, X_Checksum_SHA256=sha).push(200, {"results": []})  # the search finds no base
    dl = Client(server.url, "lwm_x").download(7, 1, dest=tmp_path)
    assert dl.sha256 == sha and recorded_base("bob-hidden-bert") is None
    with pytest.raises(ConfigError) as err:
        Predictor.from_path(dl.path).predict(["the market rose"])
    assert err.value.code == "predict:user:base-embeddings"
