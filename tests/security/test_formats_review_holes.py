"""Issue 15 part D, through the API on the real database: each hole found in the review, closed.

* the login throttle keys on the real peer, not on a client-written ``X-Forwarded-For``;
* a table feature space created by a private upload is seen only by who can see one of its learnwares;
* huge numbers in a submission's requirements are a 400 naming the field, not a crashed job;
* the package template's ``learnware.yaml`` is accepted, and YAML booleans are named in the error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.accounts.apis import LoginThrottle
from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus, Visibility
from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.learnwares.services import feature_space_for_manifest
from marketplace.submissions.models import Submission
from specs.packaging import InvalidPackageError, parse_manifest
from tests.support import packages

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


# --- login throttle -------------------------------------------------------------------------------
@pytest.fixture
def three_logins_a_minute(monkeypatch):
    monkeypatch.setattr(LoginThrottle, "THROTTLE_RATES", {"login": "3/min"})
    cache.clear()
    yield
    cache.clear()


def _login(api, *, peer: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer} | ({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})
    return api.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json", **extra)


def test_rotating_x_forwarded_for_does_not_escape_the_login_throttle(alice, api, three_logins_a_minute):
    codes = [_login(api, peer="203.0.113.7", forwarded=f"198.51.100.{i}").status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert _login(api, peer="203.0.113.8").status_code == 401  # another real peer has its own budget


def test_behind_one_trusted_proxy_the_proxys_hop_is_the_client(alice, api, settings, three_logins_a_minute):
    settings.LWM_TRUSTED_PROXIES = 1
    # The proxy (10.0.0.2) appends the peer it saw; what the client wrote to the left is ignored.
    codes = [
        _login(api, peer="10.0.0.2", forwarded=f"198.51.100.{i}, 203.0.113.7").status_code for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    assert _login(api, peer="10.0.0.2", forwarded="203.0.113.9").status_code == 401


# --- feature spaces --------------------------------------------------------------------------------
def _learnware_in_space(owner, columns: list[str], rows: np.ndarray, visibility: str) -> Learnware:
    manifest = {"modality": Modality.TABLE, "input": {"columns": columns}}
    space = feature_space_for_manifest(manifest=manifest, reference=rows)  # what publishing a sample does
    lw = Learnware.objects.create(
        owner=owner,
        name=f"lw-{visibility}",
        slug=f"lw-{visibility}",
        kind=Kind.MODEL,
        modality=Modality.TABLE,
        task=Task.CLASSIFICATION,
        feature_space=space,
        license="MIT",
        visibility=visibility,
    )
    LearnwareVersion.objects.create(
        learnware=lw, number=1, artifact_sha256="0" * 64, status=VersionStatus.PUBLISHED
    )
    return lw


def _space_keys(client) -> set[str]:
    response = client.get("/api/v1/feature-spaces/")
    assert response.status_code == 200
    body = response.json()
    return {s["key"] for s in (body["results"] if isinstance(body, dict) else body)}


def test_a_space_created_by_a_private_upload_is_seen_only_by_who_sees_its_learnware(
    alice, bob, api, client_for
):
    rows = np.random.default_rng(0).normal(size=(30, 2))
    private = _learnware_in_space(alice, ["salary", "diagnosis_code"], rows, Visibility.PRIVATE)
    key = private.feature_space.key
    text = feature_space_for_manifest(manifest={"modality": Modality.TEXT, "input": {}}).key

    assert key in _space_keys(client_for(alice))
    for outsider in (client_for(bob), api):
        assert key not in _space_keys(outsider) and text in _space_keys(outsider)
        detail = outsider.get(f"/api/v1/feature-spaces/{key}/")
        assert detail.status_code == 404 and "salary" not in detail.content.decode()
    search = client_for(bob).post(
        "/api/v1/search/by-data/",
        {"feature_space": key, "file": SimpleUploadedFile("x.csv", b"salary,diagnosis_code\n1,2\n")},
        format="multipart",
    )
    assert search.json()["error"]["code"] == "search:user:unknown-space"

    _learnware_in_space(
        bob, ["salary", "diagnosis_code"], rows, Visibility.PUBLIC
    )  # a public learnware in the same space
    assert key in _space_keys(client_for(bob)) and key in _space_keys(api)


# --- requirements bounds ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learnwares", [2**70]),
        ("exclude", [2**63]),
        ("negate", [2**64]),
        ("max_model_size", 2**70),
        ("seed", 2**40),
    ],
)
def test_huge_numbers_in_requirements_are_a_400_naming_the_field(alice, client_for, field, value):
    response = client_for(alice).post(
        "/api/v1/submissions/",
        {
            "data": SimpleUploadedFile("rows.csv", b"a,b\n1,2\n3,4\n"),
            "requirements": json.dumps({field: value}),
        },
        format="multipart",
    )
    assert response.status_code == 400, response.json()
    assert field in json.dumps(response.json()["error"]["details"])
    assert not Submission.objects.exists()


# --- the package template ----------------------------------------------------------------------------
def test_the_package_templates_manifest_is_accepted_as_shipped():
    manifest = parse_manifest((ROOT / "docs" / "package-template" / "learnware.yaml").read_bytes())
    assert all(isinstance(c, str) for c in manifest["output"]["classes"])


def test_yaml_booleans_in_classes_are_named_with_the_fix():
    raw = (
        packages.manifest_yaml(
            name="m",
            description="d",
            kind="model",
            modality="table",
            task="classification",
            input={"columns": ["a"]},
            output={"classes": ["no", "yes"]},
            license="MIT",
        )
        .replace("'no'", "no")
        .replace("'yes'", "yes")
    )
    with pytest.raises(InvalidPackageError) as caught:
        parse_manifest(raw.encode())
    reason = caught.value.details["output.classes"]
    assert "YAML booleans (false, true)" in reason and 'quote them, e.g. ["no", "yes"]' in reason
