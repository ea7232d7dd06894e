"""The client predicts a text submission's adapter package with the market's own runtime
(``specs.adapter_runtime``): its embeddings equal PEFT's on the same base and adapter, and its
class probabilities equal an independent softmax of the stored head on PEFT's embeddings."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lwm_client.errors import IntegrityError
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from specs.minilm import MiniLMMissingError, load_minilm, minilm_path
from specs.serialization import arrays_to_bytes
from tests.support import packages

TEXTS = [
    "the soup needs more salt",
    "a late goal won the match",
    "knead the dough twice",
    "the striker scored",
]
CLASSES = ["cooking", "sport"]


def _minilm() -> str:
    try:
        return minilm_path()
    except MiniLMMissingError:
        pytest.skip("the offline MiniLM package is not installed")


def _package(adapter: dict[str, bytes], head: bytes | None) -> bytes:
    weights = adapter["adapter_model.safetensors"]
    sha = hashlib.sha256(weights).hexdigest()
    files = dict(adapter)
    recipe = {
        "method": "lora_weighted_sum",
        "task": "classification",
        "classes": CLASSES,
        "base_model": "all-minilm-l6-v2",
        "assembly": {"path": "adapter_model.safetensors", "kind": "lora_weighted_sum", "sha256": sha},
        "head": {"path": "head.lwa", "sha256": hashlib.sha256(head).hexdigest()} if head else None,
        "members": [{"version_id": 1, "artifact": {"format": "peft_lora", "sha256": sha}}],
    }
    if head is not None:
        files["head.lwa"] = head
    files["recipe.json"] = json.dumps(recipe).encode()
    manifest = {"name": "adapter-assembly", "kind": "adapter", "modality": "text", "task": "embedding"}
    files["learnware.yaml"] = yaml.safe_dump({**manifest, "base_model": "all-minilm-l6-v2"}).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _pooled(tokenizer, model) -> np.ndarray:
    """Mean-pooled, L2-normalised last hidden state of ``model`` on TEXTS (what the sandbox returns)."""
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).double().numpy()


def _peft_embeddings(adapter: dict[str, bytes], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(PEFT's adapted MiniLM, the plain MiniLM) embeddings of TEXTS, computed independently of the market."""
    from peft import PeftModel

    for name, data in adapter.items():
        (folder / name).write_bytes(data)
    tokenizer, base = load_minilm(_minilm())
    plain = _pooled(tokenizer, base)
    return _pooled(tokenizer, PeftModel.from_pretrained(base, str(folder), is_trainable=False).eval()), plain


def test_an_adapter_package_embeds_as_peft_and_classifies_with_its_head(tmp_path):
    _minilm()
    adapter = packages.lora_files(r=4, seed=11)
    reference, plain = _peft_embeddings(adapter, tmp_path)
    assert np.abs(reference - plain).max() > 1e-3  # the adapter changes the embeddings measurably

    embedder = Predictor.from_bytes(_package(adapter, head=None))
    assert embedder.task == "embedding"
    E = embedder.predict_proba(TEXTS)
    assert E.shape == (len(TEXTS), 384)
    assert_allclose(E, reference, atol=2e-5)

    rng = np.random.default_rng(2)
    coef, intercept = (
        rng.standard_normal((1, 384)) * 5.0,
        np.array([0.3]),
    )  # binary: one logit, sklearn layout
    head = arrays_to_bytes(
        {"format": "lwm-head", "version": 1, "classes": CLASSES}, {"coef": coef, "intercept": intercept}
    )
    classifier = Predictor.from_bytes(_package(adapter, head=head))
    z = reference @ coef[0] + intercept[0]
    expected = np.column_stack([1.0 / (1.0 + np.exp(z)), 1.0 / (1.0 + np.exp(-z))])  # [P(cooking), P(sport)]
    assert_allclose(classifier.predict_proba(TEXTS), expected, atol=1e-3)
    assert list(classifier.predict(TEXTS)) == [CLASSES[i] for i in expected.argmax(1)]


def test_an_adapter_package_whose_weights_do_not_match_the_recipe_is_refused():
    _minilm()
    adapter = packages.lora_files(r=4, seed=12)
    content = _package(adapter, head=None)
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files["adapter_model.safetensors"] = packages.lora_files(r=4, seed=13)["adapter_model.safetensors"]
    with pytest.raises(IntegrityError) as caught:
        Predictor(files)
    assert "sha256" in str(caught.value)
