"""Every layer's pooled states of a published base with a LoRA, an assembly or nothing applied, in the
sandbox (``run_model(kind="peft_lora", layers_max_length=...)`` with the base staged under ``base/``):
the reuse pipeline's ranking input on a published base. The states equal PEFT's own every-layer
computation (BERT mean, RoBERTa cls, DistilBERT mean); an Arrow router over one adapter twice equals
that adapter, over two different ones it differs from each; a merged LoRA (``assembly.lwa``) equals
PEFT with the same factors; a LoRA that does not fit and an unreadable assembly are refused by code."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.adapter_runtime import adapter_from_files
from specs.assembly import ArrowRouter
from tests.specs.base_models.tiny_models import SIZES
from tests.support.base_adapters import TARGETS, TEXTS, adapter_files, peft_layer_states, peft_lora_folder
from tests.support.base_model_packages import base_model_folder
from workers.sandbox import SandboxRefused, run_model


def _staged(base_folder, extra: dict[str, bytes]) -> dict[str, bytes]:
    files = dict(extra)
    files.update({f"base/{p.name}": p.read_bytes() for p in base_folder.iterdir() if p.is_file()})
    return files


def _layers(base_folder, extra: dict[str, bytes], pooling: str) -> np.ndarray:
    return run_model(
        _staged(base_folder, extra), np.array(TEXTS), kind="peft_lora", pooling=pooling, layers_max_length=128
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {
        family: base_model_folder(root / family, family, seed=4)
        for family in ("bert", "roberta", "distilbert")
    }


@pytest.mark.parametrize(
    ("family", "pooling"), [("bert", "mean"), ("roberta", "cls"), ("distilbert", "mean")]
)
def test_every_layers_states_with_a_lora_equal_pefts(bases, tmp_path, family, pooling):
    base = bases[family]
    adapter = peft_lora_folder(base, tmp_path / "lora", seed=5, targets=TARGETS[family])
    out = _layers(base, adapter_files(adapter), pooling)
    assert (
        out.shape == (len(TEXTS), SIZES["num_hidden_layers"], SIZES["hidden_size"])
        and out.dtype == np.float32
    )
    assert_allclose(out, peft_layer_states(base, adapter, TEXTS, pooling), atol=5e-5)
    # Nothing staged: the base alone, which the adapter changes.
    alone = _layers(base, {}, pooling)
    assert_allclose(alone, peft_layer_states(base, None, TEXTS, pooling), atol=5e-5)
    assert np.abs(out - alone).max() > 1e-2


def test_an_assembly_is_applied_lora_or_arrow_router(bases, tmp_path):
    base = bases["bert"]
    one = peft_lora_folder(base, tmp_path / "one", seed=5)
    two = peft_lora_folder(base, tmp_path / "two", seed=6)
    a, b = (adapter_from_files(adapter_files(f), base_model_key="tiny") for f in (one, two))
    expected = peft_layer_states(base, one, TEXTS, "mean")
    # One LoRA serialised as the pipeline stores a merged one (specs.assembly, no pickle).
    assert_allclose(_layers(base, {"assembly.lwa": a.to_bytes()}, "mean"), expected, atol=5e-5)
    # A router over the same adapter twice sends every token to it: that adapter's states.
    same = ArrowRouter(top_k=1).fit([a, a])
    assert_allclose(_layers(base, {"assembly.lwa": same.to_bytes()}, "mean"), expected, atol=5e-5)
    # Over two different adapters it routes tokens between them: unlike either alone.
    routed = _layers(base, {"assembly.lwa": ArrowRouter(top_k=1).fit([a, b]).to_bytes()}, "mean")
    for single in (expected, peft_layer_states(base, two, TEXTS, "mean")):
        assert np.abs(routed - single).max() > 1e-3


def test_an_assembly_that_does_not_fit_or_cannot_be_read_is_refused(bases, tmp_path):
    other = peft_lora_folder(bases["distilbert"], tmp_path / "other", targets=TARGETS["distilbert"])
    misfit = adapter_from_files(adapter_files(other), base_model_key="tiny")
    with pytest.raises(SandboxRefused) as err:
        _layers(bases["bert"], {"assembly.lwa": misfit.to_bytes()}, "mean")
    assert err.value.code == "upload:user:adapter-base-mismatch", err.value
    with pytest.raises(SandboxRefused) as err:
        _layers(bases["bert"], {"assembly.lwa": b"not an assembly"}, "mean")
    assert err.value.code == "upload:user:adapter-weights", err.value


def test_layer_mode_is_only_for_layered_calls():
    with pytest.raises(ValueError, match="layers_max_length"):
        run_model(b"", np.array(TEXTS), kind="peft_lora", base_model_path="/nowhere", layers_max_length=128)
