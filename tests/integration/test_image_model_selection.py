"""Image base models through the API, the real worker and the sandbox: publish, refuse, rank.

Two tiny ViTs built from configs are published as image base models: one informative (random
weights, so its embeddings are a random projection of the pixels) and one blind to its input (its
patch projection zeroed: every image embeds the same). A labelled zip of sklearn digits is submitted
with ``requirements.kind = "base_model"``; the worker ranks only the image base models (the
market's text MiniLM is no candidate), layer by layer in the sandbox, puts the informative model
first with the same scores as an independent in-process ranking, and evaluates a head on it against
logistic regression on the pixels from scratch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as DjangoClient
from django.urls import reverse
from lwm_client import Client
from lwm_client.model_selection import ranking_table

from marketplace.jobs.choices import JobStatus
from marketplace.learnwares.models import BaseModel, Learnware
from specs.base_model_head import layer_features
from specs.base_models import EmbeddingCache, inspect_model_folder, rank_base_models
from specs.base_models.images import ImageLayerEmbedder
from specs.scratch_linear import pixel_features
from tests.integration.test_publish import finished, upload
from tests.integration.test_submissions import _finished
from tests.support.base_model_packages import drop_registered_minilm
from tests.support.image_base_models import (
    IMAGE_BROKEN,
    digits_images,
    image_base_model_folder,
    image_base_model_package,
)
from tests.support.image_market import images_npz, images_zip
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vits")
    return {
        "vit-informative": image_base_model_folder(root / "informative", seed=1),
        "vit-blind": image_base_model_folder(root / "blind", seed=1, blind=True),
    }


@pytest.fixture(autouse=True)
def empty_embedding_cache():
    shutil.rmtree(Path(settings.VAR_DIR) / "embeddings", ignore_errors=True)


def _publish(client: Any, folders: dict[str, Path]) -> list[int]:
    ids = []
    for name, folder in folders.items():
        response = upload(client, image_base_model_package(folder, name=name))
        assert response.status_code == 202, response.json()
        job = finished(response.json()["job"])
        assert job.status == JobStatus.SUCCEEDED, job.error
        ids.append(response.json()["learnware"])
    return ids


def _submit(client: Any, name: str, labelled: bytes, **fields: str) -> Any:
    form = {
        "labelled": SimpleUploadedFile(name, labelled),
        "requirements": json.dumps({"kind": "base_model", "seed": 2}),
        **fields,
    }
    return client.post("/api/v1/submissions/", form, format="multipart")


def test_image_base_models_publish_and_rank_a_labelled_image_task(
    celery_worker, s3_storage, alice, client_for, folders, live_server, monkeypatch, tmp_path
):
    client = client_for(alice)
    ids = _publish(client, folders)
    for lw_id in ids:
        lw = Learnware.objects.get(id=lw_id)
        row = BaseModel.objects.get(learnware=lw)
        assert (lw.kind, lw.modality, lw.task) == ("base_model", "image", "embedding")
        assert (row.modality, row.num_layers, row.hidden_size) == ("image", 2, 32)
        assert "vit image encoder" in row.description
        page = client.get(f"/learnwares/{lw_id}/")
        assert page.status_code == 200 and "pretrained image encoder" in page.content.decode()
    text_models = Learnware.objects.filter(kind="base_model", modality="text").count()

    images, labels = digits_images(n_per_class=15)
    response = _submit(client, "labelled.zip", images_zip(images, labels))
    assert response.status_code == 202, response.json()
    assert response.json()["submission"]["modality"] == "image"
    body = _finished(client, response.json()["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    rank, evaluate = body["results"]["rank"], body["results"]["evaluate"]
    assert rank["modality"] == "image" and rank["n_samples"] == len(labels)
    assert [c["name"] for c in rank["candidates"]] == ["vit-informative v1", "vit-blind v1"]
    if text_models:  # the market's MiniLM (migration 0009) is visible but no candidate for images
        assert "of another modality are no candidates" in rank["explanation"]

    # The same scores as an independent in-process ranking on the same folders and pixels.
    pixels = images.astype(np.float32) / 255.0
    cache = EmbeddingCache()
    local = rank_base_models(
        {f"{n} v1": ImageLayerEmbedder(inspect_model_folder(f), cache=cache) for n, f in folders.items()},
        pixels,
        np.unique(labels, return_inverse=True)[1],
    )
    assert [c["name"] for c in rank["candidates"]] == local.names
    for stored, mine in zip(rank["candidates"], local.candidates, strict=True):
        assert stored["texts_encoded"] == len(labels)
        for e in ("logme", "hscore", "knn"):
            np.testing.assert_allclose(
                stored["scores"][e]["layers"], mine.scores[e].layers, rtol=1e-3, atol=1e-4
            )

    assert evaluate["head"]["name"] == "logistic head on vit-informative v1"
    assert evaluate["baseline"]["name"] == "logistic regression on pixels from scratch"
    assert evaluate["verdict"] in ("better", "no_difference", "worse")
    for row in (evaluate["head"], evaluate["baseline"]):
        low, high = row["interval"]["ci95"]
        assert 0.0 <= low <= row["interval"]["mean"] <= high <= 1.0
        assert row["interval"]["mean"] == pytest.approx(np.mean(row["per_fold"]))
    assert evaluate["head"]["interval"]["mean"] > 0.6  # 3 digit classes: chance is 1/3

    # The same images through the Python client (an NPZ, modality image): every embedding now comes
    # from the worker's cache, and the ranking is the same.
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    lwm = Client(live_server.url, poll_interval=0.2)
    lwm.login("alice", "alice-pass-123")
    again = lwm.rank_image_models(images, labels, timeout=300)
    assert again.status == "succeeded", again.error
    assert [c["name"] for c in again.results["rank"]["candidates"]] == local.names
    assert [c["texts_encoded"] for c in again.results["rank"]["candidates"]] == [0, 0]

    # The head is delivered (the informative ViT beats the 8x8 pixels or ties them); the client
    # downloads it with its base and predicts as the head refitted here on an in-process embedding.
    assert evaluate["verdict"] != "worse" and evaluate["package"].startswith("delivered")
    predictor = Client.load(lwm.download_submission(body["id"], dest=tmp_path).path)
    layers = ImageLayerEmbedder(inspect_model_folder(folders["vit-informative"])).embed(pixels).layers
    features = layer_features(layers, rank["chosen"]["layer"])
    classes, y = np.unique(labels, return_inverse=True)
    head = scratch_fit(
        scratch_models("classification", 2)["logistic_regression"], features, y, "classification"
    )
    np.testing.assert_allclose(predictor.predict_proba(pixels), head.predict_proba(features), atol=1e-5)
    assert list(predictor.predict(pixels)) == list(classes[head.predict(features)])
    assert ranking_table(again).splitlines()[1].split()[1] == "vit-informative"

    browser = DjangoClient()
    browser.force_login(alice)
    page = browser.get(reverse("submission-page", args=[body["id"]])).content.decode()
    assert "data-ranking" in page and "labelled images" in page
    assert all(f'data-model="{name}"' in page for name in local.names)


@pytest.mark.parametrize("case", ["processor-auto-map", "not-allow-listed-cnn", "config-wider-than-weights"])
def test_a_bad_image_base_model_is_refused_by_the_worker_with_its_code(
    case, celery_worker, s3_storage, alice, client_for, folders, tmp_path
):
    spoil, code = IMAGE_BROKEN[case]
    spoilt = shutil.copytree(folders["vit-informative"], tmp_path / "model")
    spoil(spoilt)
    response = upload(client_for(alice), image_base_model_package(spoilt, name=f"bad-{case}"))
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == JobStatus.REJECTED and job.error["code"] == code, job.error
    assert not BaseModel.objects.filter(learnware__owner=alice).exists()


def test_an_image_task_with_only_text_base_models_is_refused_at_submission(alice, client_for):
    from marketplace.learnwares.services.spaces import base_models_register

    drop_registered_minilm()
    base_models_register()  # the market's text MiniLM only
    images, labels = digits_images(n_per_class=6)
    refused = _submit(client_for(alice), "labelled.zip", images_zip(images, labels))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (
        error["code"] == "submission:user:no-base-models"
        and "no published image base model" in error["message"]
    )
    assert "another modality" in error["message"]


def test_image_sample_mistakes_are_refused_at_submission_with_their_codes(alice, client_for, folders):
    from marketplace.core.exceptions import ValidationFailed
    from marketplace.submissions.model_selection import check_model_selection

    images, labels = digits_images(n_per_class=6)
    cases = {
        "submission:user:model-selection-one-class": (
            images_zip(images, ["7"] * len(labels)),
            "images",
            "image",
        ),
        "submission:user:too-few-labels": (images_zip(images[:10], labels[:10]), "images", "image"),
        # An NPZ is a table unless the submission says modality image: not a sample a base model reads.
        "submission:user:model-selection-not-text": (images_npz(images, labels), "npz", "table"),
        "submission:user:missing-labels": (images_zip(images), "images", "image"),
    }
    for code, (raw, fmt, modality) in cases.items():
        with pytest.raises(ValidationFailed) as caught:
            check_model_selection(user=alice, labelled=raw, labelled_format=fmt, modality=modality)
        assert caught.value.code == code, (code, caught.value)


def test_a_worse_head_on_images_delivers_the_pixel_baseline_the_client_runs(
    celery_worker, s3_storage, alice, client_for, folders, live_server, monkeypatch, tmp_path
):
    """Only the blind ViT (every image embeds the same) is published: its head loses to the pixels, so
    the package is logistic regression on the downscaled pixels refitted on every row
    (``specs.scratch_linear``), and the client's predictions equal that baseline refitted here."""
    _publish(client_for(alice), {"vit-blind": folders["vit-blind"]})
    images, labels = digits_images(n_per_class=15)
    client = client_for(alice)
    body = _finished(
        client, _submit(client, "labelled.zip", images_zip(images, labels)).json()["submission"]["id"]
    )
    assert body["status"] == "succeeded", body["error"]
    evaluate = body["results"]["evaluate"]
    assert evaluate["verdict"] == "worse", evaluate["statement"]
    assert evaluate["winner"]["kind"] == "from_scratch" and "lwm-scratch-linear" in evaluate["package"]
    assert evaluate["package_sha256"] == body["package_sha256"]

    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    predictor = Client.load(market.download_submission(body["id"], dest=tmp_path).path)
    pixels = images.astype(np.float32) / 255.0
    classes, y = np.unique(labels, return_inverse=True)
    baseline = scratch_fit(
        scratch_models("classification", 2)["logistic_regression"],
        pixel_features(pixels),
        y,
        "classification",
    )
    expected = baseline.predict_proba(pixel_features(pixels))
    np.testing.assert_allclose(predictor.predict_proba(pixels), expected, rtol=0, atol=1e-8)
    assert list(predictor.predict(images)) == list(classes[expected.argmax(axis=1)])  # uint8 0..255 too
