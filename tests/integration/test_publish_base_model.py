"""Publishing ``kind: base_model`` through the API to the real worker and sandbox.

A tiny random BERT built from a config publishes with its card, is listed by ``kind`` and
``base_model``, and has no RKME; each refusal answers its code, rejects the version, deletes the
stored package and leaves no specification or registry row; a pickle ``.bin`` is refused at upload
before anything is stored or loaded.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from marketplace.jobs.choices import JobStatus
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion, Specification
from tests.integration.test_publish import bucket_keys, finished, upload
from tests.support.base_model_packages import (
    BROKEN,
    base_model_folder,
    base_model_package,
    drop_registered_minilm,
    pickle_weights,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("bert") / "model", seed=1)


def test_a_tiny_bert_publishes_as_a_base_model_with_its_card(
    celery_worker, s3_storage, alice, client_for, folder
):
    drop_registered_minilm()  # the listings below hold exactly the model published here
    client = client_for(alice)
    response = upload(client, base_model_package(folder, name="tiny-bert", pooling="cls"))
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == JobStatus.SUCCEEDED, job.error

    lw = Learnware.objects.get(id=response.json()["learnware"])
    version = lw.versions.get()
    assert (lw.kind, lw.modality, lw.task) == ("base_model", "text", "embedding")
    assert version.status == VersionStatus.PUBLISHED and version.artifact_format == "hf_safetensors"
    assert not Specification.objects.filter(version=version).exists()  # a base model has no RKME
    assert [c["check"] for c in version.checks if c["ok"]] == [
        "validate",
        "sandbox",
        "spec",
        "fingerprints",
    ]
    registry = BaseModel.objects.get(learnware=lw)
    assert (registry.hidden_size, registry.num_layers) == (32, 2) and lw.base_model_id == registry.id
    assert "cls pooling" in registry.description

    card = client.get(f"/api/v1/learnwares/{lw.id}/").json()
    assert card["kind"] == "base_model" and card["base_model"] == registry.key
    for query in ("kind=base_model", f"base_model={registry.key}"):
        listed = client.get(f"/api/v1/search/?{query}").json()
        assert [r["learnware_id"] for r in listed["results"]] == [lw.id], (query, listed)
    assert client.get("/api/v1/search/?kind=adapter").json()["results"] == []
    # What the client library (lwm search --kind base_model) sends is a filter the server applies.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # as test_client.py does
    from lwm_client.search_params import card_search_params

    sent = card_search_params("", 20, {"kind": "base_model", "modality": "text"})
    assert [r["learnware_id"] for r in client.get("/api/v1/search/", sent).json()["results"]] == [lw.id]
    page = client.get(f"/learnwares/{lw.id}/")
    assert page.status_code == 200 and "pretrained text encoder" in page.content.decode()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_refused_base_model_leaves_no_half_made_row(
    case, celery_worker, s3_storage, alice, client_for, folder, tmp_path
):
    spoil, code = BROKEN[case]
    spoilt = shutil.copytree(folder, tmp_path / "model")
    spoil(spoilt)
    client = client_for(alice)
    before = set(bucket_keys(s3_storage))

    response = upload(client, base_model_package(spoilt, name=f"bad-{case}"))
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == JobStatus.REJECTED and job.error["code"] == code, job.error
    version = LearnwareVersion.objects.get(learnware_id=response.json()["learnware"])
    assert version.status == VersionStatus.REJECTED and version.rejection_reasons[0]["code"] == code
    assert (
        not Specification.objects.exists() and not BaseModel.objects.filter(learnware__owner=alice).exists()
    )
    assert set(bucket_keys(s3_storage)) == before  # the rejected package was deleted
    listed = client.get("/api/v1/search/?kind=base_model").json()["results"]
    assert [r for r in listed if r["owner"] != "market"] == []


def test_a_pickle_bin_is_refused_at_upload_before_anything_is_stored_or_loaded(
    celery_worker, s3_storage, alice, client_for, folder, tmp_path
):
    marker = tmp_path / "unpickled"
    client = client_for(alice)
    before = set(bucket_keys(s3_storage))
    data = base_model_package(folder, extra={"model/pytorch_model.bin": pickle_weights(marker)})

    response = upload(client, data)
    assert response.status_code == 400 and response.json()["error"]["code"] == "upload:user:pickle-artifact"
    assert not Learnware.objects.filter(owner=alice).exists()
    assert not LearnwareVersion.objects.filter(learnware__owner=alice).exists()
    assert set(bucket_keys(s3_storage)) == before and not marker.exists()


def test_an_admin_registered_base_model_is_an_ordinary_row_of_the_same_kind(
    celery_worker, s3_storage, admin_user, folder, tmp_path
):
    """``manage.py publish_base_model`` on a sentence-transformers style folder (with 1_Pooling/ and a
    README, left behind) goes through the sandbox and publishes a kind: base_model learnware."""
    st_folder = Path(shutil.copytree(folder, tmp_path / "st"))
    (st_folder / "1_Pooling").mkdir()
    (st_folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (st_folder / "README.md").write_text("# tiny")
    out = io.StringIO()
    call_command("publish_base_model", str(st_folder), owner=admin_user.username, name="tiny-st", stdout=out)
    lw = Learnware.objects.get(name="tiny-st")
    version = lw.versions.get()
    assert finished(str(version.job_id)).status == JobStatus.SUCCEEDED, out.getvalue()
    version.refresh_from_db()
    assert lw.kind == "base_model" and version.status == VersionStatus.PUBLISHED
    assert version.manifest["output"] == {"dim": 32} and version.manifest["pooling"] == "mean"
    assert BaseModel.objects.get(learnware=lw).num_layers == 2
