"""Adapters naming a published base model, through the upload service and the publish pipeline (real
sandbox, no worker): a BERT base with cls pooling gives a space with its pooling, a DistilBERT base
(its own q_lin/.../out_lin names) one of its own; each refusal is named — a LoRA on modules the base's
family lacks, a LoRA of other shapes, an unknown base, a base the uploader cannot see, an image base —
and leaves nothing half-made (no specification, no encoder space, no stored package)."""

from __future__ import annotations

import pytest
import transformers as tf

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel, FeatureSpace, Learnware, Specification
from specs.adapter_bases import encoder_space_key
from tests.specs.base_models.tiny_models import SIZES, VOCAB, save_folder
from tests.support.base_adapters import base_adapter_package, peft_lora_folder
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.image_base_models import image_base_model_folder, image_base_model_package


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    base = base_model_folder(root / "base", "bert", seed=8)
    return base, peft_lora_folder(base, root / "lora", seed=9)


def _base_key(publish, user, folder, **kwargs) -> str:
    lw, version = publish(user, base_model_package(folder, **kwargs))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    return BaseModel.objects.get(learnware=lw).key


def _assert_rejected_cleanly(version, key: str, code: str) -> None:
    assert version.status == VersionStatus.REJECTED, version.status
    assert version.rejection_reasons[0]["code"] == code, version.rejection_reasons
    assert not Specification.objects.filter(version=version).exists()
    assert not FeatureSpace.objects.filter(encoder_id=key).exists()  # no empty encoder space either
    assert version.package.name == ""  # the stored package was deleted


def test_an_adapter_on_a_cls_pooled_bert_publishes_into_its_space(alice, publish, bert, client):
    base, lora = bert
    key = _base_key(publish, alice, base, name="cls-bert", pooling="cls")
    lw, version = publish(alice, base_adapter_package(lora, base_model=key, dim=32, name="on-cls-bert"))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    space = Specification.objects.get(version=version).feature_space
    assert (space.key, space.dim, space.schema["pooling"]) == (encoder_space_key(key), 32, "cls")
    assert lw.base_model.key == key
    # Its page's snippet downloads that base's package (the base learnware), not a Hub id.
    client.force_login(alice)
    base_lw = BaseModel.objects.get(key=key).learnware_id
    page = client.get(f"/learnwares/{lw.id}/").content.decode()
    assert f"market.download({base_lw}, dest=" in page and "hidden[:, 0]" in page


def test_an_adapter_on_a_distilbert_publishes_and_one_on_modules_it_lacks_is_refused(
    alice, publish, bert, tmp_path
):
    base = base_model_folder(tmp_path / "distilbert", "distilbert", seed=1)
    key = _base_key(publish, alice, base, name="tiny-distilbert")
    lora = peft_lora_folder(base, tmp_path / "lora", targets=("q_lin", "v_lin", "out_lin"))
    lw, version = publish(alice, base_adapter_package(lora, base_model=key, dim=32, name="on-distilbert"))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    space = Specification.objects.get(version=version).feature_space
    assert (space.key, space.dim, lw.base_model.key) == (encoder_space_key(key), 32, key)
    # A LoRA trained on BERT names encoder.layer.N.attention.self.query, which DistilBERT lacks.
    _, version = publish(alice, base_adapter_package(bert[1], base_model=key, dim=32, name="bert-lora"))
    assert version.status == VersionStatus.REJECTED, version.status
    reason = version.rejection_reasons[0]
    assert reason["code"] == "upload:user:adapter-base-mismatch", reason
    assert "attention.self.query" in reason["message"], reason
    assert not Specification.objects.filter(version=version).exists()


def test_a_lora_trained_on_another_width_is_refused_by_name(alice, publish, bert, tmp_path):
    base, _ = bert
    key = _base_key(publish, alice, base, name="narrow-bert")
    wider = tf.AutoModel.from_config(
        tf.BertConfig(
            **{**SIZES, "hidden_size": 48, "intermediate_size": 96},
            vocab_size=len(VOCAB),
            max_position_embeddings=64,
            pad_token_id=0,
        )
    )
    lora = peft_lora_folder(save_folder(wider, tmp_path / "wide"), tmp_path / "lora")
    _, version = publish(alice, base_adapter_package(lora, base_model=key, dim=32, name="wide-lora"))
    _assert_rejected_cleanly(version, key, "upload:user:adapter-base-mismatch")


def test_an_unknown_base_is_refused_at_upload(alice, publish, bert):
    _, lora = bert
    with pytest.raises(ValidationFailed) as err:
        publish(alice, base_adapter_package(lora, base_model="alice-no-such-base", dim=32, name="orphan"))
    assert err.value.code == "upload:user:unknown-base-model"
    assert not Learnware.objects.filter(owner=alice, kind="adapter").exists()


def test_a_base_the_uploader_cannot_see_is_refused_as_unknown(alice, bob, publish, bert):
    base, lora = bert
    key = _base_key(publish, bob, base, name="bobs-private-bert", manifest={"visibility": "private"})
    with pytest.raises(ValidationFailed) as err:
        publish(alice, base_adapter_package(lora, base_model=key, dim=32, name="on-bobs-bert"))
    assert err.value.code == "upload:user:unknown-base-model" and "not a registered" in err.value.message
    assert not Learnware.objects.filter(owner=alice, kind="adapter").exists()
    # Its owner may build on it.
    _, version = publish(bob, base_adapter_package(lora, base_model=key, dim=32, name="on-my-bert"))
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons


def test_an_adapter_on_an_image_base_model_is_refused_at_upload(alice, publish, bert, tmp_path):
    _, lora = bert
    lw, version = publish(
        alice, image_base_model_package(image_base_model_folder(tmp_path / "vit"), name="tiny-vit")
    )
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    key = BaseModel.objects.get(learnware=lw).key
    with pytest.raises(ValidationFailed) as err:
        publish(alice, base_adapter_package(lora, base_model=key, dim=32, name="on-a-vit"))
    assert err.value.code == "upload:user:adapter-base-unsupported" and "image" in err.value.message
    assert not Learnware.objects.filter(owner=alice, kind="adapter").exists()
