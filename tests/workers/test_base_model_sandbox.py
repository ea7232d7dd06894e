"""An uploaded base model in the sandbox (``run_model(kind="hf_encoder")``): the folder checks of
``specs.base_models`` refuse by name before anything loads, and a good folder's probe embeddings
equal an independent in-process computation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from tests.support.base_model_packages import BROKEN, base_model_folder
from workers.sandbox import SandboxRefused, run_model

TEXTS = np.array(["the market is up", "a film award for the band", "the team win the cup final"])


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("base") / "model", seed=3)


def _reference(folder, pooling: str) -> np.ndarray:
    """The same embeddings computed here with plain transformers calls (not the sandbox's code)."""
    from transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in TEXTS:  # one text at a time: no padding, so the mean is over all its tokens
            ids = tokenizer(str(text), return_tensors="pt")
            states = model(input_ids=ids["input_ids"]).last_hidden_state[0]
            rows.append(states[0] if pooling == "cls" else states.mean(0))
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_good_base_model_embeds_the_probe_with_its_declared_pooling(good, pooling):
    out = run_model(good, TEXTS, kind="hf_encoder", pooling=pooling)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    assert_allclose(out, _reference(good, pooling), rtol=1e-4, atol=1e-5)


def test_the_two_poolings_differ(good):
    mean = run_model(good, TEXTS, kind="hf_encoder", pooling="mean")
    cls = run_model(good, TEXTS, kind="hf_encoder", pooling="cls")
    assert np.abs(mean - cls).max() > 1e-3  # the pooling the manifest declares is the one applied


def test_an_unknown_pooling_is_refused_by_name(good):
    with pytest.raises(SandboxRefused) as err:
        run_model(good, TEXTS, kind="hf_encoder", pooling="max")
    assert err.value.code == "upload:user:base-model-pooling"


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_or_hostile_folder_is_refused_with_its_code(good, tmp_path, case):
    spoil, code = BROKEN[case]
    folder = shutil.copytree(good, tmp_path / "model")
    spoil(folder)
    with pytest.raises(SandboxRefused) as err:
        run_model(folder, TEXTS, kind="hf_encoder", pooling="mean")
    assert err.value.code == code, err.value
    assert not (tmp_path / "ran").exists()


def test_a_refused_folder_runs_none_of_its_code(good, tmp_path):
    """auto_map naming a module the folder brings: refused, and the module never ran (marker absent)."""
    folder = shutil.copytree(good, tmp_path / "model")
    marker = tmp_path / "marker"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    BROKEN["auto-map"][0](folder)
    with pytest.raises(SandboxRefused) as err:
        run_model(folder, TEXTS, kind="hf_encoder", pooling="mean")
    assert err.value.code == "upload:user:base-model-remote-code"
    assert not marker.exists()


def _layer_reference(folder) -> np.ndarray:
    """Every transformer layer's mean over a text's tokens, computed here with plain transformers calls
    (one text at a time: no padding), (n, L, h)."""
    from transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in TEXTS:
            ids = tokenizer(str(text), return_tensors="pt")
            states = model(input_ids=ids["input_ids"], output_hidden_states=True).hidden_states[1:]
            rows.append(torch.stack([layer[0].mean(0) for layer in states]))
    return torch.stack(rows).numpy()


def test_the_layers_mode_returns_every_layers_pooled_embedding(good):
    out = run_model(good, TEXTS, kind="hf_encoder", layers_max_length=128)
    assert out.shape == (len(TEXTS), 2, 32) and out.dtype == np.float32
    assert_allclose(out, _layer_reference(good), rtol=1e-4, atol=1e-5)
    # The last layer's entry is the probe's mean pooling of the same texts.
    assert_allclose(
        out[:, -1], run_model(good, TEXTS, kind="hf_encoder", pooling="mean"), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("case", ["h5-weights", "auto-map"])
def test_the_layers_mode_runs_the_folder_checks_first(good, tmp_path, case):
    spoil, code = BROKEN[case]
    folder = shutil.copytree(good, tmp_path / "model")
    spoil(folder)
    with pytest.raises(SandboxRefused) as err:
        run_model(folder, TEXTS, kind="hf_encoder", layers_max_length=128)
    assert err.value.code == code
