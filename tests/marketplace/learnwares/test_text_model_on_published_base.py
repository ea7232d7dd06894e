"""Text models (heads on sentence embeddings) naming a published base model, through the upload service
and the publish pipeline (real sandbox, no worker).

A tiny random BERT (hidden size 32) is published as ``kind: base_model``; a TorchScript head and an ONNX
head of width 32 naming it publish into its encoder space ``text-<key>`` — the RKME sent (``rkme.json``,
32-d) or fitted on the base's own embeddings of the sample (run in the sandbox, equal to plain
transformers here) — and a search by data in that space finds them while the MiniLM space does not.
Each refusal is named and leaves nothing half-made: an unknown base, one the uploader cannot see, an
image base, a head of the MiniLM's width (found by running it), an ONNX head of another width (read off
its graph), an RKME of another dimension, a new version on another base, a table model naming a base.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from marketplace.core.exceptions import Conflict, ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel, FeatureSpace, Learnware, Specification
from marketplace.learnwares.services.spaces import TEXT_SPACE_KEY
from specs import mmd_squared, rkme_fit, rkme_from_json, rkme_to_json
from specs.adapter_bases import encoder_space_key
from tests.integration.test_adapter_on_published_base import _base_embeddings
from tests.support.base_adapters import TEXTS
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.image_base_models import image_base_model_folder, image_base_model_package
from tests.support.onnx_packages import onnx_linear
from tests.support.packages import (
    build_table_model_package,
    build_text_model_package,
    linear_model_bytes,
    unit_rows,
)

HIDDEN = 32  # tests.specs.base_models.tiny_models.SIZES


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("text-model-base") / "bert", "bert", seed=3)


@pytest.fixture
def base_key(alice, publish, bert) -> str:
    lw, version = publish(alice, base_model_package(bert, name="tiny-bert-base"))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    return BaseModel.objects.get(learnware=lw).key


def _head(key: str, name: str, **kwargs) -> bytes:
    return build_text_model_package(name=name, manifest={"base_model": key}, **kwargs)


def _rejected(version, code: str, key: str) -> dict:
    assert version.status == VersionStatus.REJECTED, version.status
    reason = version.rejection_reasons[0]
    assert reason["code"] == code, reason
    assert not Specification.objects.filter(version=version).exists()
    assert not FeatureSpace.objects.filter(encoder_id=key).exists()  # no empty encoder space either
    assert version.package.name == ""
    return reason


def _search(api, space_key: str, rkme: str) -> list[int]:
    r = api.post("/api/v1/search/by-data/", {"feature_space": space_key, "rkme": rkme}, format="json")
    assert r.status_code == 200, r.json()
    return [hit["learnware_id"] for hit in r.json()["results"]]


def test_a_torchscript_head_publishes_into_its_base_space_and_is_found_there(
    alice, publish, base_key, client_for, client
):
    lw, version = publish(alice, _head(base_key, "head-on-bert", width=HIDDEN))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    spec = Specification.objects.select_related("feature_space").get(version=version)
    space = spec.feature_space
    assert (space.key, space.dim, space.encoder_id) == (encoder_space_key(base_key), HIDDEN, base_key)
    assert lw.base_model.key == base_key and lw.feature_space_id == space.id
    assert spec.computed_from == "client"

    api = client_for(alice)
    query = rkme_to_json(rkme_fit(unit_rows(30, HIDDEN, seed=0), 10, 1.0, random_state=0))
    assert _search(api, space.key, query) == [lw.id]
    # The MiniLM space does not hold it: a query there lists the MiniLM head only.
    minilm, _ = publish(alice, build_text_model_package(name="head-on-minilm"))
    minilm_query = rkme_to_json(rkme_fit(unit_rows(30, 384, seed=0), 10, 1.0, random_state=0))
    assert _search(api, TEXT_SPACE_KEY, minilm_query) == [minilm.id]
    assert not Specification.objects.filter(version=version, feature_space__key=TEXT_SPACE_KEY).exists()
    # Its page: the client embeds raw texts with that base (not the MiniLM), at the version it is pinned to.
    client.force_login(alice)
    page = client.get(f"/learnwares/{lw.id}/").content.decode()
    pinned = f"{lw.base_model.name} v{version.base_pin['version']}, the version it was checked against"
    assert pinned in page and f"space text-{base_key}" in page and "print(model.predict(texts))" in page
    assert "lwm predict" not in page  # the CLI would embed raw texts with the MiniLM


def test_an_onnx_head_with_a_sample_gets_the_rkme_of_the_base_embeddings(alice, publish, base_key, bert):
    package = _head(
        base_key, "onnx-head-on-bert", sample=TEXTS, model={"model.onnx": onnx_linear(HIDDEN, 2, seed=1)}
    )
    lw, version = publish(alice, package)
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    spec = Specification.objects.select_related("feature_space").get(version=version)
    assert (spec.feature_space.key, spec.computed_from) == (encoder_space_key(base_key), "sample")
    # Fitted on the base's embeddings of the sample (sandbox): at float32 noise from the same
    # embeddings computed here with plain transformers, far from other texts'.
    stored = rkme_from_json(json.dumps(spec.rkme))
    mine = _base_embeddings(bert, TEXTS)
    near = mmd_squared(stored.Z_, stored.beta_, mine, np.full(len(mine), 1 / len(mine)), 1.0)
    others = _base_embeddings(bert, ["a b c d e f", "the the the the", "z y x w", "award award"])
    far = mmd_squared(stored.Z_, stored.beta_, others, np.full(4, 0.25), 1.0)
    assert near < 1e-8 and far > 1e-2, (near, far)


def test_naming_the_minilm_is_the_default_text_space(alice, publish):
    lw, version = publish(alice, _head("all-MiniLM-L6-v2", "head-on-minilm"))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    assert Specification.objects.get(version=version).feature_space.key == TEXT_SPACE_KEY


@pytest.mark.parametrize("minilm_row", [True, False], ids=["registry-row", "no-registry-row"])
def test_a_head_of_the_minilm_width_is_refused_by_name(alice, publish, base_key, minilm_row):
    # The MiniLM's width is tried whether or not its registry row exists (a flushed database, or an
    # admin who removed it): the width is the market's own text space's, not data.
    if not minilm_row:
        Learnware.objects.filter(base_model__hidden_size=384).delete()
        BaseModel.objects.filter(hidden_size=384).delete()
    _, version = publish(alice, _head(base_key, "minilm-head-on-bert", width=384))
    reason = _rejected(version, "upload:user:model-input-width", base_key)
    assert reason["details"] == {"base_model": base_key, "hidden_size": HIDDEN, "input_width": 384}


def test_a_head_that_fails_at_every_width_keeps_the_probe_s_own_code(alice, publish, base_key):
    # The right width but 3 scores for 2 classes: rerun at 384 it crashes, so the width is not the cause.
    package = _head(base_key, "three-scores", model={"model.pt": linear_model_bytes(HIDDEN, 3)}, width=HIDDEN)
    _, version = publish(alice, package)
    _rejected(version, "publish:user:output-shape", base_key)


def test_an_onnx_head_of_another_width_is_refused_from_its_graph(alice, publish, base_key):
    package = _head(base_key, "wide-onnx", width=HIDDEN, model={"model.onnx": onnx_linear(48, 2)})
    _, version = publish(alice, package)
    reason = _rejected(version, "upload:user:model-input-width", base_key)
    assert reason["details"]["input_width"] == 48


def test_an_rkme_of_another_dimension_is_refused(alice, publish, base_key):
    # A 32-wide head with a 384-d rkme.json (computed on MiniLM embeddings).
    package = _head(
        base_key, "head-minilm-rkme", width=384, model={"model.pt": linear_model_bytes(HIDDEN, 2)}
    )
    _, version = publish(alice, package)
    assert version.status == VersionStatus.REJECTED
    assert version.rejection_reasons[0]["code"] == "publish:user:rkme-dimension", version.rejection_reasons
    assert not Specification.objects.filter(version=version).exists()


def test_unknown_hidden_and_image_bases_are_refused_at_upload(alice, bob, publish, bert, tmp_path):
    with pytest.raises(ValidationFailed) as err:
        publish(alice, _head("alice-no-such-base", "orphan", width=HIDDEN))
    assert err.value.code == "upload:user:unknown-base-model"
    lw, version = publish(bob, base_model_package(bert, name="bobs-bert", manifest={"visibility": "private"}))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    hidden = BaseModel.objects.get(learnware=lw).key
    with pytest.raises(ValidationFailed) as err:
        publish(alice, _head(hidden, "on-bobs-bert", width=HIDDEN))
    assert err.value.code == "upload:user:unknown-base-model" and "not a registered" in err.value.message
    lw, version = publish(
        alice, image_base_model_package(image_base_model_folder(tmp_path / "vit"), name="vit")
    )
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    with pytest.raises(ValidationFailed) as err:
        publish(alice, _head(BaseModel.objects.get(learnware=lw).key, "on-a-vit", width=HIDDEN))
    assert err.value.code == "upload:user:base-model-modality"
    assert not Learnware.objects.filter(owner=alice, kind="model").exists()
    # Only text models (and adapters) name a base.
    with pytest.raises(ValidationFailed) as err:
        publish(alice, build_table_model_package(manifest={"base_model": hidden}))
    assert err.value.code == "upload:user:manifest-field" and "base_model" in err.value.details


def test_a_new_version_keeps_its_base(alice, publish, base_key):
    lw, version = publish(alice, _head(base_key, "kept-base", width=HIDDEN))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    with pytest.raises(Conflict) as err:
        publish(alice, build_text_model_package(name="kept-base"), learnware=lw)
    assert err.value.code == "upload:user:incompatible-version" and err.value.details == {"base_model": ""}
    _, second = publish(alice, _head(base_key, "kept-base", width=HIDDEN, seed=2), learnware=lw)
    assert second.status == VersionStatus.PUBLISHED, second.rejection_reasons
