"""The learnware API through APIClient: upload, list, detail, versions, download, edit, delete, privacy."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog, Learnware
from tests.support import packages

pytestmark = pytest.mark.django_db


def upload(client, data, url="/api/v1/learnwares/"):
    return client.post(url, {"package": SimpleUploadedFile("p.zip", data)}, format="multipart")


def test_upload_answers_202_with_ids_and_a_bad_package_400_with_its_code(alice, client_for):
    client = client_for(alice)
    ok = upload(client, packages.build_table_model_package(name="first"))
    assert ok.status_code == 202
    assert set(ok.json()) == {"learnware", "version", "job", "status"} and ok.json()["version"] == 1
    bad = upload(client, packages.path_traversal_package())
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "upload:user:path-traversal"
    assert (
        upload(client, packages.build_table_model_package(name="first")).json()["version"] == 2
    )  # same name: new version


def test_anonymous_users_cannot_upload(api):
    assert upload(api, packages.build_table_model_package()).status_code in (401, 403)


def test_a_published_version_downloads_byte_identical_with_its_sha256(alice, bob, client_for, publish):
    data = packages.build_table_model_package(name="dl")
    lw, version = publish(alice, data)
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    response = client_for(bob).get(f"/api/v1/learnwares/{lw.id}/versions/1/download")
    body = b"".join(response.streaming_content)
    assert body == data and response["X-Checksum-SHA256"] == hashlib.sha256(data).hexdigest()


def test_a_private_learnware_is_invisible_to_others_through_every_endpoint(
    alice, bob, api, client_for, publish
):
    lw, _ = publish(
        alice, packages.build_table_model_package(name="secret", manifest={"visibility": "private"})
    )
    base = f"/api/v1/learnwares/{lw.id}"
    for client in (client_for(bob), api):
        assert lw.id not in [item["id"] for item in client.get("/api/v1/learnwares/").json()["results"]]
        for url in (f"{base}/", f"{base}/versions/", f"{base}/versions/1/", f"{base}/versions/1/download"):
            assert client.get(url).status_code == 404, url
        assert client.patch(f"{base}/", {"description": "x"}, format="json").status_code in (401, 403, 404)
        assert client.delete(f"{base}/").status_code in (401, 403, 404)
    assert (
        upload(
            client_for(bob), packages.build_table_model_package(name="secret"), f"{base}/versions/"
        ).status_code
        == 404
    )
    owner = client_for(alice)
    assert owner.get(f"{base}/").status_code == 200
    assert owner.get(f"{base}/versions/1/download").status_code == 200


def test_the_owner_edits_the_card_and_soft_deletes_with_audit_rows(alice, bob, client_for, publish):
    lw, _ = publish(alice, packages.build_table_model_package(name="card"))
    url = f"/api/v1/learnwares/{lw.id}/"
    assert client_for(bob).patch(url, {"description": "mine now"}, format="json").status_code == 404
    changed = client_for(alice).patch(url, {"description": "Better words", "tags": ["x"]}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "Better words"
    assert client_for(alice).patch(url, {"license": "NOPE"}, format="json").status_code == 400
    assert client_for(alice).delete(url).status_code == 204
    assert client_for(alice).get(url).status_code == 404
    assert Learnware.objects.get(id=lw.id).deleted_at is not None
    assert {"learnware.updated", "learnware.deleted"} <= set(
        AuditLog.objects.filter(learnware=lw).values_list("action", flat=True)
    )


def test_rejected_versions_are_listed_only_for_their_owner(alice, bob, client_for, publish):
    lw, v1 = publish(alice, packages.build_table_model_package(name="mixed"))
    _, v2 = publish(alice, packages.FAILURES["output-shape"][0](), learnware=lw)
    assert (v1.status, v2.status) == (VersionStatus.PUBLISHED, VersionStatus.REJECTED)
    mine = client_for(alice).get(f"/api/v1/learnwares/{lw.id}/versions/").json()["results"]
    theirs = client_for(bob).get(f"/api/v1/learnwares/{lw.id}/versions/").json()["results"]
    assert [v["number"] for v in mine] == [2, 1] and [v["number"] for v in theirs] == [1]
    assert mine[0]["rejection_reasons"][0]["code"] == "publish:user:output-shape"
    assert client_for(alice).get(f"/api/v1/learnwares/{lw.id}/versions/1/download").status_code == 200


def test_a_new_version_must_keep_the_kind_modality_and_task(alice, client_for, publish):
    lw, _ = publish(alice, packages.build_table_model_package(name="stable"))
    other = packages.build_table_model_package(name="stable", task="regression", n_classes=1)
    response = upload(client_for(alice), other, f"/api/v1/learnwares/{lw.id}/versions/")
    assert (
        response.status_code == 409 and response.json()["error"]["code"] == "upload:user:incompatible-version"
    )


def test_feature_spaces_are_listed_with_their_standardisation(alice, client_for, publish):
    publish(alice, packages.build_table_model_package(columns=["u", "v"], sample="csv", name="space"))
    spaces = client_for(alice).get("/api/v1/feature-spaces/").json()
    table = next(s for s in spaces if s["kind"] == "table" and s["schema"]["columns"] == ["u", "v"])
    assert table["gamma"] == pytest.approx(0.25) and len(table["standardization"]["mean"]) == 2
    assert client_for(alice).get(f"/api/v1/feature-spaces/{table['key']}/").json()["dim"] == 2
