"""Text-model submissions in a published base model's encoder space, on real services: a tiny random BERT
published as ``kind: base_model``, two TorchScript heads of its width (``base_model: <key>``) published into
``text-<key>``, then ``POST /api/v1/submissions/`` with ``requirements: {feature_space: text-<key>}`` (no
``kind: "adapter"``).

The user's texts are embedded by the base in the sandbox (the RKME equals the one of plain transformers'
mean-pooled states here), both heads are identified there and scored on the base's embeddings of the labelled
texts (each head's accuracy equals the one computed here), and the package's recipe names the base version
the spec stage embedded with (``recipe.base``); the real client fetches that base and runs the package on raw
texts, as it runs the same recipe on embeddings computed here. A base version published after the spec stage
is not used by the later stages, even when the run resumes after the worker died (the spec stage's is).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from numpy.testing import assert_allclose

from marketplace.learnwares.models import BaseModel, LearnwareVersion
from marketplace.submissions.models import Submission
from specs.adapter_bases import encoder_space_key
from tests.integration.test_submission_adapters import _post, predictor_files
from tests.integration.test_submission_adapters_on_base import TOPICS, _publish, _texts, base_card
from tests.integration.test_submissions import _finished
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.packages import build_text_model_package
from workers.pipelines.reuse import reuse_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client import Client  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLASSES = sorted(TOPICS)


def _mean_embeddings(folder: Path, texts: list[str]) -> np.ndarray:
    """The base's mean-pooled last states, L2-normalised, with plain transformers (one text a call)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        rows = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0) for t in texts]
    E = torch.stack(rows).double().numpy()
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def _head(seed: int) -> torch.nn.Module:
    """The head ``build_text_model_package(seed=seed, width=32)`` packages (``linear_model_bytes``)."""
    torch.manual_seed(seed)
    return torch.nn.Linear(32, 2).eval()


def test_text_models_on_a_published_base_are_identified_ranked_and_packaged_with_the_base(
    celery_worker, s3_storage, bob, alice, client_for, tmp_path, live_server, monkeypatch
):
    base_folder = base_model_folder(tmp_path / "base", "bert", seed=6)
    api = client_for(bob)
    base_lw = _publish(api, base_model_package(base_folder, name="tiny-bert", pooling="mean"))
    key = BaseModel.objects.get(learnware_id=base_lw).key
    space = encoder_space_key(key)
    heads = {
        seed: _publish(
            api,
            build_text_model_package(
                name=f"head-{topic}",
                seed=seed,
                width=32,
                sample=_texts(topic, 8, seed=1 + seed),
                manifest={"base_model": key, "output": {"classes": CLASSES}},
            ),
        )
        for seed, topic in enumerate(TOPICS)
    }
    client = client_for(alice)
    texts = _texts("finance", 8, seed=20) + _texts("sport", 8, seed=21)
    labels = ["finance"] * 8 + ["sport"] * 8
    posted = _post(client, texts, labels, {"feature_space": space})
    body = _finished(client, posted["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    results = body["results"]
    version = LearnwareVersion.objects.get(learnware_id=base_lw, number=1)
    assert (results["spec"]["feature_space"], results["spec"]["d"]) == (space, 32)
    assert results["spec"]["base_version_id"] == version.id
    # The spec stage's rows (data, then labelled texts, embedded by the base in the sandbox) are the
    # embeddings computed here.
    E = _mean_embeddings(base_folder, texts)
    assert_allclose(_work_rows(body["id"]), np.vstack([E, E]), atol=1e-5)
    assert {s["learnware_id"] for s in results["identify"]["singles"]} == set(heads.values())
    # Both heads were pinned to v1 when they published, the version this run embeds with.
    for card in [*results["identify"]["singles"], *results["rank"]["candidates"]]:
        note = card["base_pin"]
        assert (note["version"], note["version_id"], note["run_version_id"]) == (1, version.id, version.id)
        assert note["differs"] is False, card
    # Each head ran on the base's embeddings of the labelled texts: its accuracy is the one computed here.
    by_id = {lw: seed for seed, lw in heads.items()}
    for row in results["rank"]["candidates"]:
        logits = _head(by_id[row["learnware_id"]])(torch.from_numpy(E.astype(np.float32))).detach().numpy()
        mine = float(np.mean(np.asarray(CLASSES)[logits.argmax(axis=1)] == np.asarray(labels)))
        assert row["scores"]["accuracy"] == pytest.approx(mine), row

    files = predictor_files(client, body)
    recipe = json.loads(files["recipe.json"])
    assert recipe["feature_space"] == space and yaml.safe_load(files["learnware.yaml"])["base_model"] == key
    assert recipe["base"] == base_card(key, version, base_folder)
    # The real client downloads the package with the base its recipe names and embeds raw texts with it:
    # the same predictions as the recipe run on the embeddings computed here.
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path)
    assert (tmp_path / "base_models" / f"{version.artifact_sha256}.zip").is_file()
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)
    on_rows = Predictor.from_path(got.path).predict_proba(E)
    assert_allclose(predictor.predict_proba(texts), on_rows, atol=1e-5)
    assert list(predictor.predict(texts)) == list(np.asarray(predictor.classes)[on_rows.argmax(axis=1)])

    # A base version is published after the spec stage and the worker dies there: the resumed run keeps the
    # spec stage's version (a fresh context reads it from the stored spec result).
    Submission.objects.filter(id=body["id"]).update(results={})

    class WorkerDied(Exception):
        pass

    def publish_and_die(stage: str, *args: object, **kwargs: object) -> None:
        if stage == "identify":
            newer = LearnwareVersion.objects.get(id=version.id)
            newer.pk, newer.number = None, 2
            newer.save()
            # One head says it was trained on v2, one was published before pins (no record).
            first, second = (LearnwareVersion.objects.get(learnware_id=heads[seed]) for seed in (0, 1))
            first.base_pin = {**first.base_pin, "version": 2, "version_id": newer.id}
            second.base_pin = {}
            first.save()
            second.save()
            raise WorkerDied

    with pytest.raises(WorkerDied):
        reuse_run(submission_id=body["id"], report=publish_and_die)
    assert LearnwareVersion.objects.filter(learnware_id=base_lw, number=2, status="published").exists()
    assert reuse_run(submission_id=body["id"], report=lambda *a, **k: None)["resumed_stages"] == ["spec"]
    rerun = Submission.objects.get(id=body["id"])
    assert rerun.results["spec"]["base_version_id"] == version.id
    # The identify and rank results say which head runs on another base version than its pinned one.
    newer_id = LearnwareVersion.objects.get(learnware_id=base_lw, number=2).id
    expected = {heads[0]: (2, newer_id, True), heads[1]: (None, None, None)}
    for card in [*rerun.results["identify"]["singles"], *rerun.results["rank"]["candidates"]]:
        note = card["base_pin"]
        assert (note["version"], note["version_id"], note["differs"]) == expected[card["learnware_id"]], card
        assert (note["run_version"], note["run_version_id"]) == (1, version.id)
    rebuilt = json.loads(predictor_files(client, _finished(client, body["id"]))["recipe.json"])
    assert (rebuilt["base"]["version"], rebuilt["base"]["version_id"]) == (1, version.id)


def _work_rows(submission_id: str) -> np.ndarray:
    """The spec stage's ``user-rows.npy`` (the user's rows in the space)."""
    import io

    from django.core.files.storage import storages

    sub = Submission.objects.get(id=submission_id)
    name = f"submissions/{sub.owner_id}/{sub.id}/work/{sub.results['spec']['rows_file']['file']}"
    with storages["default"].open(name, "rb") as fh:
        return np.load(io.BytesIO(fh.read()), allow_pickle=False)
