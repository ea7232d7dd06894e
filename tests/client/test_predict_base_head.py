"""The client runs a model-selection package (``specs.base_model_head``: a base-model reference + a
logistic head) on the base's folder: its probabilities equal the market's head (the from-scratch
pipeline's logistic regression, fitted here on an in-process layer embedding), in this process and in
an isolated one; a missing, altered or unsafe base is refused with a named error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from lwm_client import Client
from lwm_client.base_heads import BaseModelMissing
from lwm_client.errors import IntegrityError, UnsafeArtifactError
from lwm_client.isolated import IsolatedPredictor
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from specs.base_model_head import (
    HEAD_FORMAT,
    HEAD_RECIPE,
    HEAD_VERSION,
    HEAD_WEIGHTS,
    fitted_head,
    layer_features,
)
from specs.base_models import LayerEmbedder, inspect_model_folder
from specs.recipe import sha256_hex
from tests.support.adapters import TOPICS
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.packages import zip_file
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models

TOPIC_A, TOPIC_B, TOPIC_C = sorted(TOPICS)[:3]
TEXTS = [t for topic in (TOPIC_A, TOPIC_B, TOPIC_C) for t, _ in TOPICS[topic]]
LABELS = [topic for topic in (TOPIC_A, TOPIC_B, TOPIC_C) for _ in TOPICS[topic]]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    folder = base_model_folder(root / "tiny", seed=5)
    package = root / "tiny.zip"
    package.write_bytes(base_model_package(folder, name="tiny"))
    return folder, package


def _market_head(folder: Path, layer: int | str):
    """(the package's files, the fitted pipeline, the features): the market's head on the base."""
    layers = LayerEmbedder(inspect_model_folder(folder)).embed(TEXTS).layers
    features = layer_features(layers, layer)
    classes, y = np.unique(LABELS, return_inverse=True)
    model = scratch_fit(
        scratch_models("classification", 0)["logistic_regression"], features, y, "classification"
    )
    return model, features, [str(c) for c in classes]


def _package(folder: Path, package: Path, layer: int | str, model, classes) -> dict[str, bytes]:
    head = fitted_head(model).to_bytes()
    recipe = {
        "format": HEAD_FORMAT,
        "version": HEAD_VERSION,
        "base_model": {
            "name": "tiny",
            "learnware_id": 7,
            "version": 1,
            "package_sha256": sha256_hex(package.read_bytes()),
            "registered": None,
            "weights_sha256": sha256_hex((folder / "model.safetensors").read_bytes()),
            "modality": "text",
            "max_length": 128,
        },
        "layer": layer,
        "pooling": "mean",
        "classes": classes,
        "head": {"path": HEAD_WEIGHTS, "sha256": sha256_hex(head)},
    }
    manifest = {"name": "head", "kind": "model", "modality": "text", "output": {"classes": classes}}
    return {
        HEAD_RECIPE: json.dumps(recipe).encode(),
        HEAD_WEIGHTS: head,
        "learnware.yaml": yaml.safe_dump(manifest).encode(),
    }


@pytest.mark.parametrize("layer", ["mean", 1])
def test_the_client_predicts_as_the_market_head_on_the_base_zip_or_folder(base, layer, monkeypatch, tmp_path):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    folder, package = base
    model, features, classes = _market_head(folder, layer)
    files = _package(folder, package, layer, model, classes)
    expected = model.predict_proba(features)
    for given in (package, folder):
        predictor = Predictor(files, base=given)
        assert predictor.classes == classes and predictor.task == "classification"
        assert_allclose(predictor.predict_proba(TEXTS), expected, atol=1e-6)
        assert list(predictor.predict(TEXTS)) == [classes[i] for i in model.predict(features)]
    # A base fetched by download_submission is found in the cache by its sha256.
    cache = tmp_path / "base_models"
    cache.mkdir()
    shutil.copyfile(package, cache / f"{sha256_hex(package.read_bytes())}.zip")
    assert_allclose(Predictor(files).predict_proba(TEXTS), expected, atol=1e-6)


def test_an_unverified_head_package_runs_isolated_with_its_base(base, monkeypatch, tmp_path):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    folder, package = base
    model, features, classes = _market_head(folder, "mean")
    path = zip_file(_package(folder, package, "mean", model, classes), tmp_path / "head.zip")
    predictor = Client.load(path, base=package)
    assert isinstance(predictor, IsolatedPredictor)
    assert_allclose(predictor.predict_proba(TEXTS[:6]), model.predict_proba(features[:6]), atol=1e-6)
    assert list(predictor.predict(TEXTS[:6])) == [classes[i] for i in model.predict(features[:6])]


def test_a_missing_altered_or_unsafe_base_is_refused_by_name(base, monkeypatch, tmp_path):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    folder, package = base
    model, _, classes = _market_head(folder, "mean")
    files = _package(folder, package, "mean", model, classes)

    with pytest.raises(BaseModelMissing) as missing:  # nothing fetched, nothing given
        Predictor(files)
    assert missing.value.code == "predict:user:base-missing"

    other = base_model_folder(tmp_path / "other", seed=6)
    other_zip = tmp_path / "other.zip"
    other_zip.write_bytes(base_model_package(other, name="tiny"))
    for given in (other_zip, other):  # another model: its package sha256 / its weights differ
        with pytest.raises(IntegrityError) as wrong:
            Predictor(files, base=given)
        assert wrong.value.code == "predict:user:base-head-base-checksum"

    tampered = dict(files, **{HEAD_WEIGHTS: files[HEAD_WEIGHTS][:-8] + b"\0" * 8})
    with pytest.raises(IntegrityError) as head:
        Predictor(tampered, base=folder)
    assert head.value.code == "predict:user:base-head-checksum"

    remote = tmp_path / "remote"
    shutil.copytree(folder, remote)  # the same weights, but a config asking for its own code
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "x.Model"}}))
    with pytest.raises(UnsafeArtifactError) as unsafe:
        Predictor(files, base=remote)
    assert unsafe.value.code == "predict:user:base-head-base-unsafe"
    assert unsafe.value.details["check"] == "spec:base-model-remote-code"
