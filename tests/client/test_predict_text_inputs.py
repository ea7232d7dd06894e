"""What a text package is given, shaped once: one string is one text on every path, a version-2 recipe's
member pinned to another base version included (its texts were once split into characters); a pandas
Series keeps its values whatever its index; a DataFrame gives its one text column or is refused by name
(it once predicted on its column names); an adapter package refuses embedded rows by name (it once
predicted on nothing); and a recipe's ``package_sha256`` must be a sha256 before it names a file here.

The member is a TorchScript layer returning its input's column 0, so the prediction is the first
value of the rows its base version embedded; those rows are computed here with transformers directly."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lwm_client.base_heads import base_source, member_base_references
from lwm_client.errors import ConfigError, LwmError, UnsafeArtifactError
from lwm_client.isolated import run_isolated
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from specs.assembly import BestSingle
from specs.base_models import folder_digest
from specs.recipe import sha256_hex
from tests.client.test_predict_adapter_on_base import _files as adapter_package_files
from tests.support import packages
from tests.support.base_adapters import TARGETS, peft_lora_folder
from tests.support.base_model_packages import base_model_folder, base_model_package

DIM = 32


def _ref(folder: Path, package: Path, version: int) -> dict[str, Any]:
    return {
        "key": "bob-tiny",
        "name": "tiny",
        "learnware_id": 7,
        "version": version,
        "version_id": 10 + version,
        "package_sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
        "folder_digest": folder_digest(folder),
        "pooling": "mean",
        "dim": DIM,
    }


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("member-bases")
    out = {}
    for name, seed in (("run", 1), ("own", 2)):
        folder = base_model_folder(root / name, "bert", seed=seed)
        package = root / f"{name}.zip"
        package.write_bytes(base_model_package(folder, name="tiny", pooling="mean", dim=DIM))
        out[name] = (folder, package)
    return out


def _first_column() -> bytes:
    layer = torch.nn.Linear(DIM, 1).eval()
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0] = 1.0
        layer.bias.zero_()
    return packages.torchscript_bytes(layer, torch.zeros(2, DIM))


def _recipe_files(run: dict[str, Any], own: dict[str, Any], version: int = 2) -> dict[str, bytes]:
    model = _first_column()
    blob = BestSingle(task="regression").fit([np.zeros(0)], scores=np.ones(1)).to_bytes()
    entry = {
        "version_id": 1,
        "name": "head",
        "classes": None,
        "input_shape": None,
        "artifact": {"path": "members/0/model.pt", "format": "torchscript", "sha256": sha256_hex(model)},
        "base": own,
    }
    recipe = {
        "format": "lwm-assembly-recipe",
        "version": version,
        "method": "best_single",
        "task": "regression",
        "classes": [],
        "feature_space": "text-bob-tiny",
        "transform": {"rms": [1.0] * DIM, "mean": [0.0] * DIM, "scale": [1.0] * DIM, "unit_free": False},
        "assembly": {"path": "assembly.lwa", "sha256": sha256_hex(blob), "kind": "best_single"},
        "members": [entry],
        "base": run,
    }
    manifest = {
        "name": "a",
        "kind": "model",
        "modality": "text",
        "task": "regression",
        "base_model": "bob-tiny",
    }
    return {
        "assembly.lwa": blob,
        "members/0/model.pt": model,
        "recipe.json": json.dumps(recipe).encode(),
        "learnware.yaml": yaml.safe_dump(manifest).encode(),
    }


def _embedded(folder: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised rows by transformers itself (not the market's pooling code)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float64)


def _code(fn, kind: type[LwmError] = LwmError) -> str:
    with pytest.raises(kind) as caught:
        fn()
    return caught.value.code


def test_one_string_and_a_series_reach_a_member_pinned_to_another_base_version_as_texts(bases, tmp_path):
    (run_folder, run_zip), (own_folder, own_zip) = bases["run"], bases["own"]
    own = _ref(own_folder, own_zip, 1)
    files = _recipe_files(_ref(run_folder, run_zip, 2), own)
    predictor = Predictor(files, base=run_zip, bases={own["package_sha256"]: own_zip})
    text = "the striker scored a late goal"
    one = predictor.predict_proba(text)
    assert one.shape == (1,)
    assert_allclose(one, _embedded(own_folder, [text])[:, 0], atol=2e-5)
    texts = ["the bank raised rates", "knead the dough twice"]
    series = pd.Series(texts, index=[5, 9])  # X[0] is a KeyError on this index
    assert_allclose(predictor.predict_proba(series), _embedded(own_folder, texts)[:, 0], atol=2e-5)
    # The isolated child gets the same one string (a 0-d array of text) and gives the same answer.
    package = packages.zip_file(files, tmp_path / "assembly.zip")
    isolated = run_isolated(package, text, run_zip, {own["package_sha256"]: own_zip})
    assert_allclose(isolated, one, atol=1e-6)


def test_a_dataframe_gives_its_one_text_column_or_is_refused_by_name():
    predictor = Predictor.from_bytes(packages.build_text_model_package())
    texts = ["a late goal won the match", "the soup needs more salt"]
    assert_allclose(predictor.predict_proba(pd.DataFrame({"text": texts})), predictor.predict_proba(texts))
    two = pd.DataFrame({"text": texts, "source": ["a", "b"]})  # its column names are not texts
    assert _code(lambda: predictor.predict(two), ConfigError) == "predict:user:not-text"
    numbers = pd.DataFrame({"text": [1.0, 2.0]})
    assert _code(lambda: predictor.predict(numbers), ConfigError) == "predict:user:not-text"


def test_an_adapter_package_refuses_embedded_rows_by_name(tmp_path):
    folder = base_model_folder(tmp_path / "tiny", "roberta", seed=5)
    package = tmp_path / "tiny.zip"
    package.write_bytes(base_model_package(folder, name="tiny", pooling="cls"))
    lora = peft_lora_folder(folder, tmp_path / "lora", seed=9, targets=TARGETS["roberta"])
    predictor = Predictor(adapter_package_files(folder, package, lora), base=package)
    rows = np.random.default_rng(0).normal(size=(3, DIM))
    for given in (rows, rows.tolist()):
        assert _code(lambda g=given: predictor.predict_proba(g), ConfigError) == "predict:user:not-text"


@pytest.mark.parametrize("sha", ["../../../etc/passwd", "A" * 64, "a" * 63, "g" * 64, 12])
def test_a_crafted_package_sha256_never_names_a_file(bases, sha, monkeypatch, tmp_path):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    (run_folder, run_zip), (own_folder, own_zip) = bases["run"], bases["own"]
    crafted = {**_ref(own_folder, own_zip, 1), "package_sha256": sha}
    files = _recipe_files(_ref(run_folder, run_zip, 2), crafted)
    package = packages.zip_file(files, tmp_path / "crafted.zip")
    assert _code(lambda: member_base_references(package), UnsafeArtifactError) == "predict:user:base-sha256"
    assert _code(lambda: base_source(crafted, None), UnsafeArtifactError) == "predict:user:base-sha256"
    predictor = Predictor(files, base=run_zip)
    code = _code(lambda: predictor.predict_proba(["a text"]), UnsafeArtifactError)
    assert code == "predict:user:base-sha256"
    with zipfile.ZipFile(package) as zf:  # the crafted value is in the package as written
        assert json.loads(zf.read("recipe.json"))["members"][0]["base"]["package_sha256"] == sha


def test_a_member_base_in_a_version_1_recipe_is_refused(bases):
    (run_folder, run_zip), (own_folder, own_zip) = bases["run"], bases["own"]
    files = _recipe_files(_ref(run_folder, run_zip, 2), _ref(own_folder, own_zip, 1), version=1)
    predictor = Predictor(files, base=run_zip)
    assert _code(lambda: predictor.predict_proba(["a text"]), UnsafeArtifactError) == "predict:user:recipe"


@pytest.mark.parametrize("key", ["../../etc/x", "a/b", "key.json", ""])
def test_a_crafted_base_model_key_never_names_a_file(key: str) -> None:
    """A text model's ``base_model`` names ``by-key/<key>.json`` in the client's cache: anything but a
    slug is refused by name (an empty key is no base at all)."""
    from lwm_client.errors import UnsafeArtifactError
    from lwm_client.model_bases import model_base_key

    manifest = {"kind": "model", "modality": "text", "base_model": key}
    if not key:
        assert model_base_key(manifest) is None
        return
    with pytest.raises(UnsafeArtifactError) as err:
        model_base_key(manifest)
    assert err.value.code == "predict:user:base-key"
    assert model_base_key({**manifest, "base_model": "tiny-bert_v2"}) == "tiny-bert_v2"
