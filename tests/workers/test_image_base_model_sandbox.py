"""An uploaded image base model (ViT) in the sandbox (``run_model(kind="hf_encoder")``): each bad
folder is refused by name before anything loads, and the probe and layer embeddings computed in the
sandbox equal an independent in-process transformers computation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from tests.support.base_model_packages import base_model_folder
from tests.support.image_base_models import IMAGE_BROKEN, digits_images, image_base_model_folder
from workers.sandbox import SandboxRefused, run_model

IMAGES = (digits_images(n_per_class=3)[0] / 255.0).astype(np.float32)  # (9, 1, 8, 8) in [0, 1]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return image_base_model_folder(tmp_path_factory.mktemp("vit") / "model", seed=3)


def _reference(folder):
    """Every layer's token states and the last hidden state, with plain transformers calls; pixel
    values normalised by hand as the folder's preprocessor config says ((x - 0.5) / 0.25)."""
    from transformers import ViTModel

    model = ViTModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy((IMAGES - 0.5) / 0.25), output_hidden_states=True)
    return [s.numpy() for s in out.hidden_states[1:]], out.last_hidden_state.numpy()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_probe_is_the_declared_pooling_of_the_last_hidden_state(good, pooling):
    out = run_model(good, IMAGES, kind="hf_encoder", pooling=pooling)
    last = _reference(good)[1]
    assert out.shape == (len(IMAGES), 32) and out.dtype == np.float32
    assert_allclose(out, last[:, 0] if pooling == "cls" else last.mean(1), rtol=1e-4, atol=1e-5)


def test_layer_mode_returns_every_layers_token_mean(good):
    out = run_model(good, IMAGES, kind="hf_encoder", layers_max_length=8)
    layers = _reference(good)[0]
    assert out.shape == (len(IMAGES), 2, 32)
    assert_allclose(out, np.stack([s.mean(1) for s in layers], axis=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", sorted(IMAGE_BROKEN))
def test_a_broken_or_hostile_image_folder_is_refused_with_its_code(good, tmp_path, case):
    spoil, code = IMAGE_BROKEN[case]
    folder = shutil.copytree(good, tmp_path / "model")
    spoil(folder)
    with pytest.raises(SandboxRefused) as err:
        run_model(folder, IMAGES, kind="hf_encoder", pooling="mean")
    assert err.value.code == code, err.value


def test_a_folder_of_the_other_modality_is_refused(good, tmp_path):
    with pytest.raises(SandboxRefused) as err:
        run_model(good, np.array(["a text probe"]), kind="hf_encoder", pooling="mean")
    assert err.value.code == "upload:user:base-model-modality"
    text_folder = base_model_folder(tmp_path / "bert", seed=1)
    with pytest.raises(SandboxRefused) as err:
        run_model(text_folder, IMAGES, kind="hf_encoder", layers_max_length=8)
    assert err.value.code == "upload:user:base-model-modality"
