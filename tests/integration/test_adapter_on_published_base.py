"""A LoRA adapter on a base model published through the market, end to end on the real worker.

A tiny random RoBERTa (and a DeBERTa-v2 with DeBERTa-v3's relative attention, whose LoRA targets
``query_proj``/``key_proj``/``value_proj``) is published as ``kind: base_model``; a PEFT LoRA built
on it (peft, offline) is published as ``kind: adapter`` naming the base's key. The adapter's RKME
lives in the base's encoder space (``text-<key>``, 32-d), fitted on the base's own embeddings of
the sample (computed in the sandbox); the sandbox's adapter embeddings, staged from the base's
published version, equal PEFT's; a user who names that space (an RKME through the API, a text file
in the portal) finds the adapter, and the MiniLM text space does not hold it; a submission naming
that space is refused by name (the reuse pipeline embeds texts with the MiniLM only, for now).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from numpy.testing import assert_allclose

from marketplace.jobs.choices import JobStatus
from marketplace.learnwares.models import BaseModel, FeatureSpace, Learnware, Specification
from marketplace.learnwares.services.spaces import TEXT_SPACE_KEY
from specs import mmd_squared, rkme_fit, rkme_from_json, rkme_to_json
from specs.adapter_bases import encoder_space_key
from tests.integration.test_publish import finished, upload
from tests.integration.test_submissions import _finished
from tests.support.base_adapters import (
    TARGETS,
    TEXTS,
    adapter_files,
    base_adapter_package,
    base_config,
    peft_embeddings,
    peft_lora_folder,
)
from tests.support.base_model_packages import base_model_folder, base_model_package
from workers.pipelines.adapter_base import adapter_call
from workers.sandbox import run_model

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", params=["roberta", "deberta-v2"])
def folders(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(f"adapter-base-{family}")
    base = base_model_folder(root / "base", family, seed=6, **base_config(family))
    return family, base, peft_lora_folder(base, root / "lora", seed=7, targets=TARGETS[family])


def _base_embeddings(folder, texts: list[str]) -> np.ndarray:
    """The base's mean-pooled, L2-normalised embeddings computed here with plain transformers."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in texts:  # one at a time: no padding
            ids = tokenizer(text, return_tensors="pt")
            rows.append(model(input_ids=ids["input_ids"]).last_hidden_state[0].mean(0))
    E = torch.stack(rows).double().numpy()
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def test_an_adapter_on_a_published_base_lives_in_its_space_and_is_found_there(
    celery_worker, s3_storage, alice, client_for, folders, client
):
    family, base, lora = folders
    api = client_for(alice)
    response = upload(api, base_model_package(base, name=f"tiny-{family}", pooling="mean"))
    assert finished(response.json()["job"]).status == JobStatus.SUCCEEDED
    key = BaseModel.objects.get(learnware_id=response.json()["learnware"]).key

    response = upload(api, base_adapter_package(lora, base_model=key, dim=32, name=f"lora-on-{family}"))
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    lw = Learnware.objects.get(id=response.json()["learnware"])
    version = lw.versions.get()
    spec = Specification.objects.select_related("feature_space").get(version=version)
    space = spec.feature_space
    assert (space.key, space.dim, space.encoder_id, space.kind) == (encoder_space_key(key), 32, key, "text")
    assert space.schema == {"encoder": key, "pooling": "mean", "normalize": True}
    assert lw.base_model.key == key and lw.feature_space_id == space.id

    # The stored RKME is of the base's own embeddings of the sample (computed in the sandbox): its
    # MMD² to the same embeddings computed here is at float32 noise, far below that to other texts.
    stored = rkme_from_json(json.dumps(spec.rkme))
    mine = _base_embeddings(base, TEXTS)
    uniform = np.full(len(mine), 1 / len(mine))
    near = mmd_squared(stored.Z_, stored.beta_, mine, uniform, space.gamma)
    others = _base_embeddings(base, ["a b c d e f", "the the the the", "z y x w", "award award"])
    far = mmd_squared(stored.Z_, stored.beta_, others, np.full(4, 0.25), space.gamma)
    assert near < 1e-8 and far > 1e-2, (near, far)

    # The adapter runs in the sandbox on the base's published folder; PEFT computes the same vectors.
    call = adapter_call(version.manifest, adapter_files(lora))
    out = run_model(call.pop("artifact"), np.array(TEXTS), kind="peft_lora", **call)
    assert_allclose(out, peft_embeddings(base, lora, TEXTS, "mean"), atol=2e-5)

    # Identification in that space: an RKME through the API, a text file through the portal.
    query = rkme_to_json(rkme_fit(mine, len(mine), space.gamma, random_state=0))
    found = api.post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "rkme": query}, format="json"
    ).json()
    assert [r["learnware_id"] for r in found["results"]] == [lw.id], found
    client.force_login(alice)
    texts = "\n".join(json.dumps({"text": t}) for t in TEXTS).encode()
    page = client.post(
        "/search/data/",
        {"file": SimpleUploadedFile("texts.jsonl", texts), "feature_space": space.key, "k": 5},
    )
    assert page.status_code == 200 and f"lora-on-{family}" in page.content.decode(), page.content[-2000:]
    assert not Specification.objects.filter(version=version, feature_space__key=TEXT_SPACE_KEY).exists()
    assert FeatureSpace.objects.filter(encoder_id=key).count() == 1

    # A models submission there (no ``kind: adapter``) embeds the texts with the base, and looks for text
    # models only: the space holds an adapter, so none is found, by name.
    form = {
        "data": SimpleUploadedFile("texts.jsonl", texts),
        "requirements": json.dumps({"feature_space": space.key}),
    }
    posted = api.post("/api/v1/submissions/", form, format="multipart")
    assert posted.status_code == 202, posted.json()
    failed = _finished(api, posted.json()["submission"]["id"])
    assert failed["status"] == "rejected", failed
    assert failed["error"]["code"] == "submission:user:no-candidates", failed["error"]
