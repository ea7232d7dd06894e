"""Text-model submissions in a published base's space, with heads pinned to different base versions, on
real services: a tiny BERT v1 is published, head A publishes on it (pinned to v1), the base publishes v2
with other weights, head B publishes (pinned to v2); a submission in ``text-<key>`` embeds the user's
texts with v2 (the newest, the run's version).

Each head is fed the labelled texts embedded by ITS pinned version: its rank score (LogME of its logits)
equals the one computed here with the head on plain transformers' embeddings of that version, and head A
on v2's embeddings would score otherwise. The package's recipe names v2 as ``base`` and head A's own
``base`` (v1, recipe version 2); the server's ``PackagePredictor`` fed each version's embeddings, the real
client on raw texts (fetching both base versions) and the client's isolated run give the same predictions,
and each member's outputs are its head on its own version's embeddings.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from marketplace.learnwares.models import BaseModel, LearnwareVersion
from specs.adapter_bases import encoder_space_key
from specs.recipe import RecipeMemberBaseError, in_task_classes, probabilities
from specs.transferability import logme
from tests.integration.test_publish import finished, upload
from tests.integration.test_submission_adapters import _package, _post
from tests.integration.test_submission_adapters_on_base import TOPICS, _publish, _texts, base_card
from tests.integration.test_submission_models_on_base import _head, _mean_embeddings
from tests.integration.test_submissions import _finished
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.packages import build_text_model_package
from workers.pipelines.reuse_package import PackagePredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client import Client  # noqa: E402
from lwm_client.errors import ConfigError  # noqa: E402
from lwm_client.isolated import IsolatedPredictor  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLASSES = sorted(TOPICS)


def _new_version(api, learnware: int, data: bytes) -> None:
    response = upload(api, data, url=f"/api/v1/learnwares/{learnware}/versions/")
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == "succeeded", job.error


def _logits(seed: int, E: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _head(seed)(torch.from_numpy(E.astype(np.float32))).double().numpy()


def test_each_head_is_fed_the_embeddings_of_its_pinned_base_version(
    celery_worker, s3_storage, bob, alice, client_for, tmp_path, live_server, monkeypatch
):
    folders = [base_model_folder(tmp_path / f"base-{s}", "bert", seed=s) for s in (6, 7)]
    api = client_for(bob)
    base_lw = _publish(api, base_model_package(folders[0], name="tiny-bert", pooling="mean"))
    key = BaseModel.objects.get(learnware_id=base_lw).key

    def head(seed: int, topic: str) -> int:
        manifest = {"base_model": key, "output": {"classes": CLASSES}}
        sample = _texts(topic, 8, seed=1 + seed)
        return _publish(
            api,
            build_text_model_package(
                name=f"head-{topic}", seed=seed, width=32, sample=sample, manifest=manifest
            ),
        )

    seeds = {head(0, "finance"): 0}  # head A, pinned to v1
    _new_version(api, base_lw, base_model_package(folders[1], name="tiny-bert", pooling="mean"))
    seeds[head(1, "sport")] = 1  # head B, pinned to v2
    v1, v2 = (LearnwareVersion.objects.get(learnware_id=base_lw, number=n) for n in (1, 2))
    pinned = {lw: LearnwareVersion.objects.get(learnware_id=lw).base_pin["version_id"] for lw in seeds}
    head_a, head_b = sorted(seeds, key=lambda lw: seeds[lw])
    assert (pinned[head_a], pinned[head_b]) == (v1.id, v2.id)

    texts = _texts("finance", 8, seed=20) + _texts("sport", 8, seed=21)
    labels = ["finance"] * 8 + ["sport"] * 8
    client = client_for(alice)
    # Stitching reads every member's outputs, so both heads are in the package.
    posted = _post(
        client, texts, labels, {"feature_space": encoder_space_key(key), "methods": ["stitching_head"]}
    )
    body = _finished(client, posted["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    results = body["results"]
    assert results["spec"]["base_version_id"] == v2.id  # the run's version: the newest

    E = {v1.id: _mean_embeddings(folders[0], texts), v2.id: _mean_embeddings(folders[1], texts)}
    own = {lw: E[pinned[lw]] for lw in seeds}
    # Each head's LogME is its logits' on its own version's embeddings; head A fed v2's would differ.
    y = np.asarray(labels)
    for row in results["rank"]["candidates"]:
        lw = row["learnware_id"]
        assert row["scores"]["logme"] == pytest.approx(logme(_logits(seeds[lw], own[lw]), y), rel=1e-4), row
        assert row["base_pin"]["embedded_with"] == (1 if lw == head_a else 2)
    wrong = logme(_logits(0, E[v2.id]), y)
    assert abs(wrong - logme(_logits(0, E[v1.id]), y)) > 1e-3

    content = _package(client, body)
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        recipe = json.loads(zf.read("recipe.json"))
    assert recipe["version"] == 2 and recipe["base"] == base_card(key, v2, folders[1]) | {"version": 2}
    bases = {m["learnware_id"]: m.get("base") for m in recipe["members"]}
    assert bases == {head_a: base_card(key, v1, folders[0]), head_b: None}

    # The server's predictor fed each version's embeddings: each member is its head on its own version's.
    server = PackagePredictor.from_bytes(content)
    rows = {v1.artifact_sha256: E[v1.id]}
    for entry, out in zip(recipe["members"], server.member_outputs(E[v2.id], rows), strict=True):
        lw = entry["learnware_id"]
        expected = in_task_classes(probabilities(_logits(seeds[lw], own[lw])), CLASSES, server.classes)
        assert_allclose(out, expected, atol=1e-5)
    on_rows = server.predict_proba(E[v2.id], rows)
    fed_wrong = server.predict_proba(E[v2.id], {v1.artifact_sha256: E[v2.id]})
    assert np.abs(on_rows - fed_wrong).max() > 1e-4  # head A on v2's embeddings predicts otherwise
    with pytest.raises(RecipeMemberBaseError):
        server.predict_proba(E[v2.id])

    # The real client fetches both base versions and embeds raw texts once per version.
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path)
    for version in (v1, v2):
        assert (tmp_path / "base_models" / f"{version.artifact_sha256}.zip").is_file()
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)
    in_process = predictor.predict_proba(texts)
    assert_allclose(in_process, on_rows, atol=1e-5)
    with pytest.raises(ConfigError) as err:  # embeddings of one version cannot feed both heads
        predictor.predict_proba(E[v2.id])
    assert err.value.code == "predict:user:member-base-rows"
    isolated = Client.load(got.path, isolate=True)
    assert isinstance(isolated, IsolatedPredictor)
    assert_allclose(isolated.predict_proba(texts), in_process, atol=1e-6)
