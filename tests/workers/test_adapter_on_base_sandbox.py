"""A LoRA adapter on a published (uploaded) base model in the sandbox: ``run_model(kind="peft_lora")``
with the base's folder staged under ``base/``. The hooks' embeddings equal PEFT's own computation
on every adaptable family (BERT, RoBERTa, ELECTRA, DistilBERT, MPNet, DeBERTa-v2 with DeBERTa-v3's
shared-key relative attention) under both poolings; a family outside the table, a LoRA on modules
the family lacks (another family's names, DeBERTa's separate position projections, a feed-forward
layer), of other widths or other layers, and a spoilt base folder are refused by code before
anything of the adapter runs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tests.specs.base_models.tiny_models import SIZES, VOCAB, save_folder
from tests.support.base_adapters import (
    DEBERTA_V3,
    TARGETS,
    TEXTS,
    adapter_files,
    base_config,
    peft_embeddings,
    peft_lora_folder,
)
from tests.support.base_model_packages import BROKEN, base_model_folder
from tests.support.image_base_models import image_base_model_folder
from workers.sandbox import SandboxRefused, run_model


def _staged(base_folder, adapter_folder) -> dict[str, bytes]:
    files = adapter_files(adapter_folder)
    files.update({f"base/{p.name}": p.read_bytes() for p in base_folder.iterdir() if p.is_file()})
    return files


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {
        family: base_model_folder(root / family, family, seed=4, **base_config(family)) for family in TARGETS
    }


@pytest.mark.parametrize(
    ("family", "pooling"),
    [
        ("bert", "mean"),
        ("bert", "cls"),
        ("roberta", "mean"),
        ("electra", "mean"),
        ("distilbert", "mean"),
        ("distilbert", "cls"),
        ("mpnet", "mean"),
        ("deberta-v2", "mean"),
        ("deberta-v2", "cls"),
    ],
)
def test_the_sandbox_hooks_equal_peft_on_a_published_base(bases, tmp_path, family, pooling):
    base = bases[family]
    adapter = peft_lora_folder(base, tmp_path / "lora", seed=5, targets=TARGETS[family])
    out = run_model(_staged(base, adapter), np.array(TEXTS), kind="peft_lora", pooling=pooling)
    expected = peft_embeddings(base, adapter, TEXTS, pooling)
    assert out.shape == (len(TEXTS), SIZES["hidden_size"]) and out.dtype == np.float32
    assert_allclose(out, expected, atol=2e-5)
    # The adapter changes the embeddings (an adapter never applied would equal the base alone).
    base_only = run_model(base, np.array(TEXTS), kind="hf_encoder", pooling=pooling).astype(np.float64)
    base_only /= np.linalg.norm(base_only, axis=1, keepdims=True)
    assert np.abs(out - base_only).max() > 1e-2


def test_every_allow_listed_text_family_has_a_row_in_the_adapter_table():
    from specs.adapter_bases import ADAPTER_FAMILIES
    from specs.base_models import ALLOWED_MODEL_TYPES

    assert set(ADAPTER_FAMILIES) == set(ALLOWED_MODEL_TYPES) == set(TARGETS)
    assert {family: ADAPTER_FAMILIES[family].targets for family in TARGETS} == TARGETS


def test_a_family_outside_the_table_is_refused_by_name(bases, tmp_path):
    # An image encoder (ViT) passes the folder checks as a base model, but a LoRA on token states is
    # not one the table addresses.
    base = image_base_model_folder(tmp_path / "vit", seed=1)
    adapter = peft_lora_folder(bases["bert"], tmp_path / "lora")
    with pytest.raises(SandboxRefused) as err:
        run_model(_staged(base, adapter), np.array(TEXTS), kind="peft_lora", pooling="mean")
    assert err.value.code == "upload:user:adapter-base-unsupported", err.value
    assert "vit" in err.value.message


# (base family, family the LoRA was trained on, its targets, the module refused): another family's
# projection names, a feed-forward layer, and DeBERTa's separate position projection.
LACKING = [
    ("electra", "distilbert", ("q_lin", "v_lin"), "transformer.layer.0.attention.q_lin"),
    ("distilbert", "bert", ("query", "value"), "encoder.layer.0.attention.self.query"),
    ("distilbert", "distilbert", ("lin1",), "transformer.layer.0.ffn.lin1"),
    # BERT's feed-forward layers (a bare "dense" reaches them beside the attention's output projection).
    ("bert", "bert", ("intermediate.dense",), "encoder.layer.0.intermediate.dense"),
    ("roberta", "roberta", ("dense",), "encoder.layer.0.intermediate.dense"),
    ("mpnet", "bert", ("query", "value"), "encoder.layer.0.attention.self.query"),
    ("deberta-v2", "bert", ("query", "value"), "encoder.layer.0.attention.self.query"),
    ("deberta-v2", "deberta-v2-pos", ("pos_key_proj",), "encoder.layer.0.attention.self.pos_key_proj"),
]


@pytest.mark.parametrize(("family", "trained_on", "targets", "module"), LACKING)
def test_a_lora_on_a_module_the_family_does_not_accept_is_refused_by_name(
    bases, tmp_path, family, trained_on, targets, module
):
    if trained_on == "deberta-v2-pos":  # without share_att_key, DeBERTa has its own pos_key_proj
        separate = {**DEBERTA_V3, "share_att_key": False, "pos_att_type": ["c2p"]}
        other = base_model_folder(tmp_path / "other", "deberta-v2", **separate)
    else:
        other = bases[trained_on]
    adapter = peft_lora_folder(other, tmp_path / "lora", targets=targets)
    with pytest.raises(SandboxRefused) as err:
        run_model(_staged(bases[family], adapter), np.array(TEXTS), kind="peft_lora", pooling="mean")
    assert err.value.code == "upload:user:adapter-base-mismatch", err.value
    assert err.value.details.get("module", "").endswith(module), err.value.details
    assert module.rsplit(".", 1)[1] in err.value.message


@pytest.mark.parametrize("other", ["wider", "deeper"])
def test_a_lora_of_another_shape_is_refused_by_name(bases, tmp_path, other):
    # The LoRA is trained on a BERT 48 wide (or 3 layers deep); the published base is 32 wide, 2 deep.
    sizes = {"hidden_size": 48, "intermediate_size": 96} if other == "wider" else {"num_hidden_layers": 3}
    import transformers as tf

    torch_model = tf.AutoModel.from_config(
        tf.BertConfig(**{**SIZES, **sizes}, vocab_size=len(VOCAB), max_position_embeddings=64, pad_token_id=0)
    )
    trained_on = save_folder(torch_model, tmp_path / "other")
    adapter = peft_lora_folder(trained_on, tmp_path / "lora")
    with pytest.raises(SandboxRefused) as err:
        run_model(_staged(bases["bert"], adapter), np.array(TEXTS), kind="peft_lora", pooling="mean")
    assert err.value.code == "upload:user:adapter-base-mismatch", err.value
    assert err.value.details.get("module", "").endswith(("query", "value")), err.value.details


def test_a_spoilt_base_folder_is_refused_with_the_base_models_code(bases, tmp_path):
    spoil, code = BROKEN["auto-map"]
    base = shutil.copytree(bases["bert"], tmp_path / "base")
    adapter = peft_lora_folder(bases["bert"], tmp_path / "lora")
    spoil(base)
    with pytest.raises(SandboxRefused) as err:
        run_model(_staged(base, adapter), np.array(TEXTS), kind="peft_lora", pooling="mean")
    assert err.value.code == code


@pytest.mark.parametrize("option", [{"use_dora": True}, {"bias": "all"}])
def test_a_peft_option_the_hooks_would_ignore_is_refused_by_name(bases, tmp_path, option):
    from tests.support.base_adapters import edit_adapter_config

    adapter = peft_lora_folder(bases["bert"], tmp_path / "lora")
    edit_adapter_config(adapter, **option)
    with pytest.raises(SandboxRefused) as err:
        run_model(_staged(bases["bert"], adapter), np.array(TEXTS), kind="peft_lora", pooling="mean")
    assert err.value.code == "upload:user:adapter-config" and next(iter(option)) in err.value.message
