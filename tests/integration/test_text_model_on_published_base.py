"""A developer publishes a text model (a head on sentence embeddings) on a published base model with the
Python client, against a live server and the real worker.

A tiny random BERT with ``cls`` pooling is published as ``kind: base_model``. The client names its space
(``encoder_space("text", base_model=key)``: ``text-<key>``, 32-d, before anything lives there), embeds the
developer's texts with the base here (``spec_texts(..., base_model=key)``: the base's package downloaded
and verified, its [CLS] state L2-normalised — equal to plain transformers; ``lwm spec --base-model`` with
the base's folder gives the same RKME), and the package (a TorchScript
head of width 32, ``base_model: key``, that RKME) publishes into that space, where a search by data finds it.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import cli  # noqa: E402
from lwm_client.packages import build_package, package_check  # noqa: E402

from marketplace.learnwares.models import FeatureSpace, Specification  # noqa: E402
from specs import mmd_squared, rkme_from_json  # noqa: E402
from specs.adapter_bases import encoder_space_key  # noqa: E402
from tests.integration.test_client import lwm  # noqa: E402, F401 - the logged-in client fixture
from tests.support.base_adapters import TEXTS  # noqa: E402
from tests.support.base_model_packages import base_model_folder, base_model_package  # noqa: E402
from tests.support.packages import linear_model_bytes  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _cls_embeddings(folder: Path, texts: list[str]) -> np.ndarray:
    """The base's [CLS] states, L2-normalised, computed here with plain transformers (one text a call)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        rows = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0, 0] for t in texts]
    E = torch.stack(rows).double().numpy()
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def test_a_head_on_a_published_base_is_specced_published_and_found_with_the_client(
    lwm,  # noqa: F811
    celery_worker,
    s3_storage,
    tmp_path,
):
    folder = base_model_folder(tmp_path / "bert", "bert", seed=11)
    base = lwm.publish(base_model_package(folder, name="tiny-cls-bert", pooling="cls"), timeout=240)
    key = lwm.learnware(base.learnware).base_model
    assert key

    space = lwm.encoder_space("text", base_model=key)
    assert (space.key, space.dim, space.gamma) == (encoder_space_key(key), 32, 1.0)
    assert space.schema == {"encoder": key, "pooling": "cls", "normalize": True}
    assert not FeatureSpace.objects.filter(key=space.key).exists()  # named before anything lives there

    rkme, used = lwm.spec_texts(TEXTS, base_model=key)
    assert used.key == space.key and rkme.Z_.shape[1] == 32
    mine = _cls_embeddings(folder, TEXTS)
    near = mmd_squared(rkme.Z_, rkme.beta_, mine, np.full(len(mine), 1 / len(mine)), 1.0)
    others = _cls_embeddings(folder, ["a b c d e f", "the the the the", "z y x w", "award award"])
    far = mmd_squared(rkme.Z_, rkme.beta_, others, np.full(4, 0.25), 1.0)
    # A random tiny BERT's [CLS] states of unrelated texts are close (MMD² about 1e-5), yet far above
    # the float noise between the client's embeddings and plain transformers'.
    assert near < 1e-10 and far > 1e-7, (near, far)

    # The CLI computes the same RKME (lwm spec --base-model, with the base's folder given as --base).
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "rkme.json"
    argv = ["--json", "spec", str(texts), "--modality", "text", "--base-model", key, "--base", str(folder)]
    assert cli.main([*argv, "-o", str(out)]) == 0
    from_cli = rkme_from_json(out.read_text())
    assert_allclose(from_cli.Z_, rkme.Z_, atol=1e-6)
    assert_allclose(from_cli.beta_, rkme.beta_, atol=1e-9)

    manifest = {
        "name": "head-on-cls-bert",
        "description": "A linear head on the tiny BERT's [CLS] embeddings.",
        "kind": "model",
        "modality": "text",
        "task": "classification",
        "base_model": key,
        "input": {},
        "output": {"classes": ["a", "b"]},
        "license": "MIT",
    }
    head_bytes = linear_model_bytes(32, 2)
    package = build_package(manifest=manifest, model=head_bytes, rkme=rkme)
    package_check(package, deep=True)  # the local probe runs the head at the rkme's width, 32
    head = lwm.publish(package, timeout=240)
    assert head.status == "published"
    stored = Specification.objects.select_related("feature_space").get(version__learnware_id=head.learnware)
    assert (stored.feature_space.key, stored.feature_space.dim) == (space.key, 32)
    assert lwm.feature_space(space.key).schema == space.schema  # the server made the space the client named

    found = lwm.search_by_data((rkme, space), k=5)
    assert [h.learnware_id for h in found.results] == [head.learnware]

    # A user runs it as its page says: the texts embedded here by the base, then the downloaded head.
    from lwm_client.base_spaces import embed_with_base

    E = embed_with_base(lwm, TEXTS, lwm.encoder_space("text", base_model=key))
    assert_allclose(E, mine, atol=1e-5)
    model = lwm.load(lwm.download(head.learnware, dest=tmp_path).path)
    scores = torch.jit.load(io.BytesIO(head_bytes))(torch.from_numpy(E.astype(np.float32))).detach().numpy()
    assert list(model.predict(E)) == [["a", "b"][i] for i in scores.argmax(axis=1)]
    # Raw texts: Client.download fetched the base with the model (its newest version, sha256 verified),
    # and the Predictor embeds them with it as the sandbox does.
    assert list(model.predict(TEXTS)) == list(model.predict(E))
    assert_allclose(model.predict_proba(TEXTS), model.predict_proba(E), atol=1e-5)
