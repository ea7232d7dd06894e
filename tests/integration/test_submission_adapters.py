"""Text submissions of LoRA adapters on real services: API -> broker -> worker (MiniLM) -> S3 -> package.

Each assembly method for adapters runs end to end once: Arrow routing (no labels, a
two-topic user, so a mixture is identified), TIES (labelled), the LoRA weighted sum (no
labels) and the weighted sum with an adapter negated (``requirements.negate``, labelled).
For the sums the packaged adapter's dense update is checked against the members' own files.
Kept to a few dozen short sentences; the worker loads MiniLM once.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from numpy.testing import assert_allclose

from marketplace.learnwares.packages import package_inspect
from specs.assembly import ArrowRouter, arrow_prototypes
from tests.integration.test_submissions import _finished
from tests.support.adapters import adapter_market_create, jsonl_bytes, topic_texts
from workers.pipelines.reuse_adapter_package import AdapterPackagePredictor
from workers.pipelines.reuse_text import adapter_from_files, embedding, layer_states, lora_delta

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _post(
    client: Any, texts: list[str], labels: list[str] | None, requirements: dict[str, Any]
) -> dict[str, Any]:
    form: dict[str, Any] = {
        "data": SimpleUploadedFile("texts.jsonl", jsonl_bytes(texts)),
        "requirements": json.dumps(requirements),
    }
    if labels is not None:
        form["labelled"] = SimpleUploadedFile("labelled.jsonl", jsonl_bytes(texts, labels))
    response = client.post("/api/v1/submissions/", form, format="multipart")
    assert response.status_code == 202, response.json()
    assert response.json()["submission"]["modality"] == "text"
    return response.json()


def _package(client: Any, body: dict[str, Any]) -> bytes:
    return b"".join(client.get(body["package_url"]).streaming_content)


def test_adapters_are_routed_by_arrow_and_merged_by_ties_end_to_end(
    celery_worker, s3_storage, bob, alice, client_for
):
    market = adapter_market_create(owner=bob)
    client = client_for(alice)
    sports, y_s = topic_texts("sports")
    cooking, y_c = topic_texts("cooking")
    texts = sports + cooking
    base = {"kind": "adapter", "feature_space": market.space.key}
    arrow = _post(client, texts, None, {**base, "methods": ["arrow_routing"], "max_modules": 2})
    ties = _post(client, texts, y_s + y_c, {**base, "methods": ["lora_ties"], "max_modules": 2})

    body = _finished(client, arrow["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    # 16 texts are too few for a significant mixture (the gain stays under twice the sampling
    # noise), so the library is the two best singles by MMD: the user's two topics.
    singles = body["results"]["identify"]["singles"]
    assert {s["learnware_id"] for s in singles[:2]} == {
        market.learnwares["sports"].id,
        market.learnwares["cooking"].id,
    }
    assert body["results"]["assemble"]["chosen"] == "arrow_routing"
    assert [m["version_id"] for m in body["results"]["assemble"]["members"]] == [
        s["version_id"] for s in singles[:2]
    ]
    predictor = AdapterPackagePredictor.from_bytes(_package(client, body))
    # The packaged router is Arrow over the members' own files: same prototypes, same embeddings.
    topics = {v.id: t for t, v in market.versions.items()}
    members = [topics[m["version_id"]] for m in body["results"]["assemble"]["members"]]
    library = [adapter_from_files(market.files[t], base_model_key="all-minilm-l6-v2") for t in members]
    router = ArrowRouter.from_bytes(predictor_files(client, body)["assembly.lwa"])
    for module, P in arrow_prototypes(library).items():
        assert_allclose(router.prototypes_[module], P, atol=1e-9)
    routed = predictor.embed(texts[:6])
    singles = [embedding(layer_states(texts[:6], lora_delta(a), sorted(a.factors))) for a in library]
    assert min(np.abs(routed - s).max() for s in singles) > 1e-6  # tokens went to different adapters

    body = _finished(client, ties["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["results"]["assemble"]["chosen"] == "lora_ties"
    assert [c["layers"] for c in body["results"]["rank"]["candidates"]] == [6] * len(
        body["results"]["rank"]["candidates"]
    )
    content = _package(client, body)
    package = package_inspect(content, require_spec=True)  # the publish checks accept it as an adapter
    assert package.manifest["kind"] == "adapter" and package.manifest["base_model"] == "all-minilm-l6-v2"
    predictions = AdapterPackagePredictor.from_bytes(content).predict(texts)
    evaluation = body["results"]["evaluate"]
    assert set(predictions.tolist()) <= {"pos", "neg"} and "lora_ties" in evaluation["methods"]
    assert evaluation["verdict"]["beats_from_scratch"] == (evaluation["verdicts"]["from_scratch"] == "better")
    assert evaluation["winner"]["method"] and all(
        s["ci95"][0] <= s["mean"] <= s["ci95"][1] for s in evaluation["scores"].values()
    )


def predictor_files(client: Any, body: dict[str, Any]) -> dict[str, bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(_package(client, body))) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _dense(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """``dW = (lora_alpha / r) B A`` per module, read from PEFT files with safetensors and numpy only."""
    from safetensors.numpy import load

    config, tensors = json.loads(files["adapter_config.json"]), load(files["adapter_model.safetensors"])
    scale = config["lora_alpha"] / config["r"]
    modules = sorted(k[: -len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight"))
    return {
        m: scale
        * (
            tensors[f"{m}.lora_B.weight"].astype(np.float64)
            @ tensors[f"{m}.lora_A.weight"].astype(np.float64)
        )
        for m in modules
    }


def test_lora_weighted_sum_and_negation_run_in_the_worker_and_package_the_dense_sum(
    celery_worker, s3_storage, bob, alice, client_for
):
    market = adapter_market_create(owner=bob)
    client = client_for(alice)
    sports, y_s = topic_texts("sports")
    finance, y_f = topic_texts("finance")
    texts = sports + finance
    base = {
        "kind": "adapter",
        "feature_space": market.space.key,
        "methods": ["lora_weighted_sum"],
        "max_modules": 2,
    }
    summed = _post(client, texts, None, base)
    negated = _post(client, texts, y_s + y_f, {**base, "negate": [market.learnwares["cooking"].id]})
    topics = {v.id: t for t, v in market.versions.items()}
    own = {t: _dense(files) for t, files in market.files.items()}

    body = _finished(client, summed["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assemble = body["results"]["assemble"]
    assert assemble["chosen"] == "lora_weighted_sum" and assemble["negated"] == []
    members = [topics[m["version_id"]] for m in assemble["members"]]
    weights = np.array(assemble["methods"][0]["parameters"]["weights"])
    # Without labels the weights are the mixture's (renormalised) if one was proposed, else uniform.
    mixture = body["results"]["identify"]["mixture"]
    if mixture["proposed"]:
        shares = {c["version_id"]: c["weight"] for c in mixture["components"]}
        expected_w = np.array([shares[m["version_id"]] for m in assemble["members"]])
        expected_w /= expected_w.sum()
    else:
        expected_w = np.full(len(members), 1.0 / len(members))
    assert_allclose(weights, expected_w, atol=1e-6)
    package = package_inspect(_package(client, body), require_spec=True)
    assert package.manifest["kind"] == "adapter"
    packaged = _dense(package.artifact)
    assert set(packaged) == set(own[members[0]])
    for module, dW in packaged.items():
        assert_allclose(dW, sum(w * own[t][module] for w, t in zip(weights, members, strict=True)), atol=1e-6)

    body = _finished(client, negated["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assemble = body["results"]["assemble"]
    assert assemble["chosen"] == "lora_weighted_sum"
    assert [topics[m["version_id"]] for m in assemble["negated"]] == ["cooking"]
    members = [topics[m["version_id"]] for m in assemble["members"]]
    assert "cooking" not in members
    weights = np.array(assemble["methods"][0]["parameters"]["weights"])
    content = _package(client, body)
    packaged = _dense(package_inspect(content, require_spec=True).artifact)
    files = predictor_files(client, body)
    recipe = json.loads(files["recipe.json"])
    assert [(topics[e["version_id"]], e["negated"]) for e in recipe["members"]] == [
        *((t, False) for t in members),
        ("cooking", True),
    ]
    # Negation subtracts the negated adapter's update at the members' mean weight.
    for module, dW in packaged.items():
        expected = (
            sum(w * own[t][module] for w, t in zip(weights, members, strict=True))
            - weights.mean() * own["cooking"][module]
        )
        assert_allclose(dW, expected, atol=1e-6)
        assert (
            np.abs(dW - (expected + weights.mean() * own["cooking"][module])).max() > 1e-3
        )  # the negation is visible
    evaluation = body["results"]["evaluate"]
    assert evaluation["chosen_score"] == evaluation["methods"]["lora_weighted_sum"]["accuracy"]
