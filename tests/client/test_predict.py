"""Safe load and predict: results equal an independent numpy computation; pickles are refused."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from lwm_client.errors import ConfigError, UnsafeArtifactError
from lwm_client.predict import Predictor, load_model
from numpy.testing import assert_allclose

from tests.support import packages


def test_table_classifier_predict_proba_is_the_softmax_of_its_linear_layer():
    torch.manual_seed(3)
    linear = torch.nn.Linear(3, 2).eval()
    data = packages.build_table_model_package(model=packages.torchscript_bytes(linear, torch.zeros(2, 3)))
    X = packages.table_data(["a", "b", "c"], 10, seed=1)
    logits = X @ linear.weight.detach().numpy().T.astype(np.float64) + linear.bias.detach().numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    predictor = Predictor.from_bytes(data)
    assert_allclose(predictor.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    assert list(predictor.predict(X)) == [f"class{i}" for i in expected.argmax(1)]


def test_torch_export_models_are_refused_without_loading():
    # torch.export.load unpickles parts of a .pt2 with full pickle; the client never calls it.
    with pytest.raises(UnsafeArtifactError) as caught:
        load_model(packages.export_model_bytes(3, 2, seed=4), "torch_export")
    assert caught.value.code == "predict:user:format"


def test_a_pickle_checkpoint_is_never_loaded():
    with pytest.raises(UnsafeArtifactError) as caught:
        load_model(packages.pickle_model_bytes(), "torchscript")
    assert "pickle" in caught.value.message


def test_an_adapter_package_has_nothing_to_predict_with():
    with pytest.raises(UnsafeArtifactError):
        Predictor.from_bytes(packages.build_lora_adapter_package())


def test_an_assembly_with_a_tampered_member_is_refused():
    files = {
        "learnware.yaml": b"name: a\nkind: model\nmodality: table\ntask: classification\n",
        "recipe.json": b'{"format": "lwm-assembly-recipe", "version": 1, "assembly": {"path": '
        b'"assembly.lwa", '
        b""
        b""
        b""
        b""
        b'"sha256": "00"}, "members": []}',
        "assembly.lwa": b"x",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    from lwm_client.errors import IntegrityError

    with pytest.raises(IntegrityError):
        Predictor.from_bytes(buffer.getvalue())


def test_a_head_on_a_published_base_takes_its_embeddings_and_refuses_raw_texts():
    package = packages.build_text_model_package(manifest={"base_model": "alice-tiny-bert"}, width=32, seed=4)
    model = Predictor.from_bytes(package)
    E = packages.unit_rows(5, 32, seed=1).astype(np.float32)
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        logits = torch.jit.load(io.BytesIO(zf.read("model.pt")))(torch.from_numpy(E)).detach().numpy()
    assert list(model.predict(E)) == [f"t{i}" for i in logits.argmax(axis=1)]
    with pytest.raises(ConfigError) as err:  # MiniLM rows of raw texts would be another space
        model.predict(["the market share price"])
    assert err.value.code == "predict:user:base-embeddings" and "embed_with_base" in str(err.value)
