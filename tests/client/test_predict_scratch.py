"""The client runs a model-selection package of the from-scratch winner (``scratch.json``,
``specs.scratch_linear``): its probabilities equal the market's baseline fitted here (TF-IDF + logistic
regression on texts, downscaled pixels + logistic regression on images), in this process and in an
isolated one; an altered package and the wrong rows are refused with named client errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from lwm_client import Client
from lwm_client.errors import ConfigError, IntegrityError, UnsafeArtifactError
from lwm_client.isolated import IsolatedPredictor
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from specs.scratch_linear import SCRATCH_JSON, SCRATCH_WEIGHTS, pixel_features, scratch_files
from tests.support.adapters import TOPICS
from tests.support.packages import zip_file
from workers.pipelines.reuse_scratch import scratch_models, text_scratch_model

TOPIC_A, TOPIC_B, TOPIC_C = sorted(TOPICS)[:3]
TEXTS = [t for topic in (TOPIC_A, TOPIC_B, TOPIC_C) for t, _ in TOPICS[topic]]
LABELS = [topic for topic in (TOPIC_A, TOPIC_B, TOPIC_C) for _ in TOPICS[topic]]
NEW = ["Nothing we have seen before.", "", TEXTS[0].upper() + " !!", "Ünïcödé — café, " + TEXTS[-1]]


def _files(model, classes: list[str], modality: str, **kw) -> dict[str, bytes]:
    manifest = {"name": "scratch", "kind": "model", "modality": modality, "output": {"classes": classes}}
    return {**scratch_files(model, classes, **kw), "learnware.yaml": yaml.safe_dump(manifest).encode()}


@pytest.fixture(scope="module")
def text_model():
    classes, y = np.unique(LABELS, return_inverse=True)
    model = text_scratch_model().fit(np.asarray(TEXTS, dtype=object), y)
    return model, [str(c) for c in classes]


def test_the_client_predicts_as_the_text_baseline_in_process_and_isolated(text_model, monkeypatch, tmp_path):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    model, classes = text_model
    files = _files(model, classes, "text")
    rows = TEXTS[:4] + NEW
    expected = model.predict_proba(np.asarray(rows, dtype=object))
    predictor = Predictor(files)
    assert predictor.classes == classes and predictor.task == "classification"
    assert_allclose(predictor.predict_proba(rows), expected, rtol=0, atol=1e-8)
    assert list(predictor.predict(rows)) == [classes[i] for i in expected.argmax(axis=1)]

    isolated = Client.load(zip_file(files, tmp_path / "scratch.zip"))  # not verified from a market
    assert isinstance(isolated, IsolatedPredictor)
    assert_allclose(isolated.predict_proba(rows), expected, rtol=0, atol=1e-8)
    assert list(isolated.predict(rows)) == [classes[i] for i in expected.argmax(axis=1)]


def test_the_client_predicts_as_the_pixel_baseline(tmp_path):
    rng = np.random.default_rng(3)
    y = np.arange(45) % 3
    images = (rng.random((45, 3, 20, 18)) * 0.6 + (y / 3)[:, None, None, None] * 0.4).astype(np.float32)
    model = scratch_models("classification", 0)["logistic_regression"].fit(pixel_features(images), y)
    files = _files(model, ["x", "y", "z"], "image", image_shape=(3, 20, 18))
    predictor = Client.load(zip_file(files, tmp_path / "scratch.zip"), isolate=False)
    new = rng.random((7, 3, 20, 18)).astype(np.float32)
    assert_allclose(predictor.predict_proba(new), model.predict_proba(pixel_features(new)), rtol=0, atol=1e-8)
    with pytest.raises(ConfigError) as wrong:  # the caller's rows, not the package, are wrong
        predictor.predict_proba(new[:, :, :10])
    assert wrong.value.code == "predict:user:scratch-input"


def test_an_altered_package_is_refused_by_name(text_model):
    model, classes = text_model
    files = _files(model, classes, "text")
    tampered = {**files, SCRATCH_WEIGHTS: files[SCRATCH_WEIGHTS][:-8] + b"\0" * 8}
    with pytest.raises(IntegrityError) as altered:
        Predictor(tampered)
    assert altered.value.code == "predict:user:scratch-checksum"
    foreign = {**files, SCRATCH_JSON: files[SCRATCH_JSON].replace(b'"version": 1', b'"version": 9')}
    with pytest.raises(UnsafeArtifactError) as unknown:
        Predictor(foreign)
    assert unknown.value.code == "predict:user:scratch-format"
