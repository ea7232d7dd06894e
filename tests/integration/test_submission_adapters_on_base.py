"""Adapter submissions in a published base model's encoder space, on real services: a tiny random BERT
published as ``kind: base_model``, two LoRAs on it published through the publish pipeline, then
``POST /api/v1/submissions/`` with ``requirements: {kind: adapter, feature_space: text-<key>}``.

The user's texts are embedded by the base in the sandbox (the RKME is ``hidden_size`` wide), both
adapters are identified there, ranked on every layer's states of the base with each LoRA applied in
the sandbox (the LogME equals the one computed here on PEFT's own states), assembled (every method)
and evaluated against heads on the frozen base; the package names the base's key, version, package
sha256 and folder digest, and a weighted sum packages the members' dense updates, which the client runs
on that base as PEFT does. A base the user can no longer see is refused by name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from numpy.testing import assert_allclose

from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion
from marketplace.learnwares.packages import package_inspect
from specs.adapter_bases import encoder_space_key
from specs.base_models import folder_digest
from specs.transferability import score_layers
from tests.integration.test_publish import finished, upload
from tests.integration.test_submission_adapters import _dense, _package, _post, predictor_files
from tests.integration.test_submissions import _finished
from tests.support.base_adapters import (
    adapter_files,
    base_adapter_package,
    peft_embeddings,
    peft_layer_states,
    peft_lora_folder,
)
from tests.support.base_model_packages import base_model_folder, base_model_package

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client import Client  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOPICS = {
    "finance": ["market", "bank", "share", "price", "profit", "sales", "company", "economy"],
    "sport": ["sport", "team", "win", "game", "match", "player", "goal", "cup", "season", "coach"],
}


def _texts(topic: str, n: int, seed: int) -> list[str]:
    """Short sentences of one topic's words (each a token of the tiny vocabulary)."""
    rng = np.random.default_rng(seed)
    words = TOPICS[topic]
    return [" ".join(["the", *rng.choice(words, size=5)]) for _ in range(n)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse-on-base")
    base = base_model_folder(root / "base", "bert", seed=6)
    loras = {t: peft_lora_folder(base, root / t, seed=11 + i) for i, t in enumerate(TOPICS)}
    return base, loras


def base_card(key: str, version, folder: Path) -> dict:
    """``recipe.base`` of a package built on ``version`` (v1) of the tiny mean-pooled BERT ``key``: computed
    here from the version row and the local folder, not read from the pipeline."""
    return {
        "key": key,
        "name": "tiny-bert",
        "learnware_id": version.learnware_id,
        "version": 1,
        "version_id": version.id,
        "package_sha256": version.artifact_sha256,
        "folder_digest": folder_digest(folder),
        "pooling": "mean",
        "dim": 32,
    }


def _publish(api, data: bytes) -> int:
    response = upload(api, data)
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == "succeeded", job.error
    return int(response.json()["learnware"])


def test_adapters_on_a_published_base_are_identified_ranked_assembled_and_packaged(
    celery_worker, s3_storage, bob, alice, client_for, folders, tmp_path, live_server, monkeypatch
):
    base_folder, loras = folders
    api = client_for(bob)
    base_lw = _publish(api, base_model_package(base_folder, name="tiny-bert", pooling="mean"))
    key = BaseModel.objects.get(learnware_id=base_lw).key
    adapters = {
        t: _publish(
            api,
            base_adapter_package(
                lora, base_model=key, dim=32, name=f"lora-{t}", sample=_texts(t, 8, seed=1 + i)
            ),
        )
        for i, (t, lora) in enumerate(loras.items())
    }
    space = encoder_space_key(key)
    client = client_for(alice)
    texts = _texts("finance", 8, seed=20) + _texts("sport", 8, seed=21)
    labels = ["finance"] * 8 + ["sport"] * 8
    requirements = {"kind": "adapter", "feature_space": space, "max_modules": 2}
    labelled = _post(client, texts, labels, requirements)
    summed = _post(client, texts, None, {**requirements, "methods": ["lora_weighted_sum"]})

    body = _finished(client, labelled["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    results = body["results"]
    assert (results["spec"]["feature_space"], results["spec"]["d"]) == (space, 32)
    assert {s["learnware_id"] for s in results["identify"]["singles"]} == set(adapters.values())
    # Ranking read every layer of the base with each LoRA applied (in the sandbox): its LogME equals
    # the one of PEFT's own states of the same texts.
    by_id = {v: t for t, v in adapters.items()}
    for row in results["rank"]["candidates"]:
        assert (row["layers"], row["pooling"]) == (2, "mean")
        states = peft_layer_states(base_folder, loras[by_id[row["learnware_id"]]], texts, "mean")
        mine = score_layers([states[:, i] for i in range(2)], np.array(labels), estimator="logme").score
        assert row["scores"]["logme"] == pytest.approx(mine, rel=1e-3, abs=1e-4), row
    methods = [m["method"] for m in results["assemble"]["methods"]]
    assert methods == ["best_single", "lora_weighted_sum", "lora_ties", "arrow_routing"]
    assert results["evaluate"]["baselines"]["from_scratch"]["features"] == "frozen tiny-bert v1 embeddings"
    files = predictor_files(client, body)
    recipe = json.loads(files["recipe.json"])
    version = LearnwareVersion.objects.get(learnware_id=base_lw, number=1)
    assert recipe["base_model"] == key and recipe["feature_space"] == space
    assert recipe["base"] == base_card(key, version, base_folder)
    assert recipe["version"] == 1  # no member carries a base of its own: readers of version 1 run it
    manifest = yaml.safe_load(files["learnware.yaml"])
    assert manifest["base_model"] == key and manifest["output"]["dim"] == 32

    body = _finished(client, summed["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assemble = body["results"]["assemble"]
    assert assemble["chosen"] == "lora_weighted_sum"
    weights = np.array(assemble["methods"][0]["parameters"]["weights"])
    package = package_inspect(_package(client, body), require_spec=True)
    assert package.manifest["kind"] == "adapter" and package.manifest["base_model"] == key
    own = {t: _dense(adapter_files(f)) for t, f in loras.items()}
    members = [by_id[m["learnware_id"]] for m in assemble["members"]]
    packaged = _dense(package.artifact)
    assert set(packaged) == set(own[members[0]])
    for module, dW in packaged.items():
        assert_allclose(dW, sum(w * own[t][module] for w, t in zip(weights, members, strict=True)), atol=1e-6)
    # The real client downloads it with the base the recipe names (that version's package, verified)
    # and runs it there, its folder's digest checked: PEFT's embeddings of the packaged LoRA on the base.
    files = predictor_files(client, body)
    folder = tmp_path / "packaged"
    folder.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (folder / name).write_bytes(files[name])
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    market = Client(live_server.url, poll_interval=0.2)
    market.login("alice", "alice-pass-123")
    got = market.download_submission(body["id"], dest=tmp_path)
    assert (tmp_path / "base_models" / f"{version.artifact_sha256}.zip").is_file()
    predictor = Client.load(got.path)
    assert isinstance(predictor, Predictor)  # verified from the market: runs in this process
    expected = peft_embeddings(base_folder, folder, texts, "mean")
    assert_allclose(predictor.predict_proba(texts), expected, atol=2e-5)

    # The base turns private: alice can no longer use its space, and is told so by name.
    Learnware.objects.filter(id=base_lw).update(visibility="private")
    hidden = _finished(client, _post(client, texts, None, requirements)["submission"]["id"])
    assert hidden["status"] == "rejected", hidden
    assert hidden["error"]["code"] == "submission:user:unknown-base-model", hidden["error"]
