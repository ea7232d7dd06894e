"""The client runs an adapter package whose recipe names a published base (``recipe.base``: an adapter
submission in that base's space) on that base: the base's package (``base=`` here; fetched by
``Client.download_submission`` otherwise) is checked against the recipe's package sha256, its folder
against the recipe's folder digest and the market's folder checks; the embeddings equal PEFT's own on
the same base and LoRA under the base's pooling, in this process and in an isolated one. A missing,
another or an altered base is refused by name, and the market's runtime never falls back to the MiniLM."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml
from lwm_client import Client
from lwm_client.base_heads import BaseModelMissing
from lwm_client.errors import IntegrityError
from lwm_client.isolated import IsolatedPredictor
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from specs.adapter_runtime import AdapterRecipePredictor
from specs.base_models import folder_digest
from specs.exceptions import SpecError
from tests.support.base_adapters import TARGETS, TEXTS, adapter_files, peft_embeddings, peft_lora_folder
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.packages import zip_file


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter-base")
    folder = base_model_folder(root / "tiny", "roberta", seed=5)
    package = root / "tiny.zip"
    package.write_bytes(base_model_package(folder, name="tiny", pooling="cls"))
    lora = peft_lora_folder(folder, root / "lora", seed=9, targets=TARGETS["roberta"])
    return folder, package, lora


def _files(folder, package, lora) -> dict[str, bytes]:
    files = adapter_files(lora)
    sha = hashlib.sha256(files["adapter_model.safetensors"]).hexdigest()
    recipe = {
        "method": "best_single",
        "task": "classification",
        "classes": None,
        "base_model": "bob-tiny",
        "base": {
            "key": "bob-tiny",
            "name": "tiny",
            "learnware_id": 7,
            "version": 1,
            "version_id": 9,
            "package_sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
            "folder_digest": folder_digest(folder),
            "pooling": "cls",
            "dim": 32,
        },
        "assembly": {"path": "adapter_model.safetensors", "kind": "best_single", "sha256": sha},
        "head": None,
        "members": [{"version_id": 1, "artifact": {"format": "peft_lora", "sha256": sha}}],
    }
    manifest = {"name": "on-tiny", "kind": "adapter", "modality": "text", "task": "embedding"}
    files["recipe.json"] = json.dumps(recipe).encode()
    files["learnware.yaml"] = yaml.safe_dump({**manifest, "base_model": "bob-tiny"}).encode()
    return files


def test_an_adapter_package_on_a_published_base_embeds_as_peft_here_and_isolated(
    setup, monkeypatch, tmp_path
):
    folder, package, lora = setup
    files = _files(folder, package, lora)
    expected = peft_embeddings(folder, lora, TEXTS, "cls")
    for given in (package, folder):  # the base's package zip, or its folder
        predictor = Predictor(files, base=given)
        assert predictor.task == "embedding"
        assert_allclose(predictor.predict_proba(TEXTS), expected, atol=2e-5)
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    isolated = Client.load(zip_file(files, tmp_path / "adapter.zip"), base=package)
    assert isinstance(isolated, IsolatedPredictor)
    assert_allclose(isolated.predict_proba(TEXTS), expected, atol=2e-5)


def test_a_missing_other_or_altered_base_is_refused_by_name(setup, monkeypatch, tmp_path):
    folder, package, lora = setup
    files = _files(folder, package, lora)
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))  # an empty base cache
    with pytest.raises(BaseModelMissing) as err:
        Predictor(files)
    assert err.value.code == "predict:user:base-missing"
    other = base_model_folder(tmp_path / "other", "roberta", seed=6)  # same shapes, other weights
    with pytest.raises(IntegrityError) as err:
        Predictor(files, base=other)
    assert err.value.code == "predict:user:adapter-base-checksum"
    wrong_zip = tmp_path / "other.zip"
    wrong_zip.write_bytes(base_model_package(other, name="tiny", pooling="cls"))
    with pytest.raises(IntegrityError):
        Predictor(files, base=wrong_zip)
    altered = shutil.copytree(folder, tmp_path / "altered")
    with (altered / "tokenizer_config.json").open("a") as handle:  # still valid JSON: another tokenizer file
        handle.write("\n")
    with pytest.raises(IntegrityError) as err:
        Predictor(files, base=altered)
    assert err.value.code == "predict:user:adapter-base-checksum"
    # The market's runtime needs the base: it never runs the adapter on the MiniLM instead.
    with pytest.raises(SpecError, match="bob-tiny"):
        AdapterRecipePredictor(files)
