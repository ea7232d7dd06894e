"""Image base models (ViT) in ``specs.base_models``: the folder checks name each refusal, the layer
embeddings equal an independent transformers computation, the cache keys images by their pixels,
and a layer-wise ranking puts an informative encoder above one that cannot see its input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from specs.base_models import BaseModelFolderError, EmbeddingCache, inspect_model_folder, rank_base_models
from specs.base_models.folder import load_text_encoder
from specs.base_models.images import ImageLayerEmbedder, embed_image_probe, load_image_encoder
from specs.exceptions import InvalidDataError
from tests.specs.base_models.tiny_models import make_folder
from tests.support.image_base_models import IMAGE_BROKEN, digits_images, image_base_model_folder


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return image_base_model_folder(tmp_path_factory.mktemp("vit") / "model", seed=1)


@pytest.fixture(scope="module")
def digits():
    images, labels = digits_images()
    return images.astype(np.float32) / 255.0, np.unique(labels, return_inverse=True)[1]


def _reference_layers(folder, images: np.ndarray) -> np.ndarray:
    """(L, n, h) with plain transformers calls: ViTModel from the folder, pixel values normalised by
    hand ((x - 0.5) / 0.25, the folder's preprocessor config; 8x8 images need no resize)."""
    from transformers import ViTModel

    model = ViTModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        states = model(pixel_values=torch.from_numpy((images - 0.5) / 0.25), output_hidden_states=True)
    return np.stack([s.mean(dim=1).numpy() for s in states.hidden_states[1:]])


def test_a_tiny_vit_is_an_image_folder(vit):
    checked = inspect_model_folder(vit)
    assert (checked.modality, checked.model_type, checked.num_layers, checked.hidden_size) == (
        "image",
        "vit",
        2,
        32,
    )
    with pytest.raises(BaseModelFolderError, match="image encoder, not a text one"):
        load_text_encoder(checked)


def test_a_text_folder_is_not_loaded_as_an_image_encoder(tmp_path):
    checked = inspect_model_folder(make_folder(tmp_path / "bert", "bert", 0))
    assert checked.modality == "text"
    with pytest.raises(BaseModelFolderError, match="not an image one"):
        load_image_encoder(checked)


@pytest.mark.parametrize("case", sorted(IMAGE_BROKEN))
def test_each_bad_image_folder_is_refused_by_name(case, vit, tmp_path):
    spoil, upload_code = IMAGE_BROKEN[case]
    spoilt = shutil.copytree(vit, tmp_path / "model")
    spoil(spoilt)
    with pytest.raises(BaseModelFolderError) as caught:
        load_image_encoder(inspect_model_folder(spoilt))
    assert caught.value.code == "spec:" + upload_code.split(":", 2)[2]


def test_layer_embeddings_equal_an_independent_transformers_computation(vit, digits):
    images = digits[0][:10]
    embedder = ImageLayerEmbedder(inspect_model_folder(vit), batch_size=4)
    layers = embedder.embed(images).layers
    assert layers.shape == (2, 10, 32)
    assert_allclose(layers, _reference_layers(vit, images), rtol=1e-4, atol=1e-5)
    assert not np.allclose(layers[0], layers[1])  # the layers are distinct states


def test_the_probe_pools_the_last_hidden_state(vit, digits):
    from transformers import ViTModel

    images = digits[0][:5]
    model = ViTModel.from_pretrained(str(vit), local_files_only=True).eval()
    with torch.no_grad():
        last = model(pixel_values=torch.from_numpy((images - 0.5) / 0.25)).last_hidden_state.numpy()
    checked = inspect_model_folder(vit)
    assert_allclose(embed_image_probe(checked, images, "mean"), last.mean(1), rtol=1e-4, atol=1e-5)
    assert_allclose(embed_image_probe(checked, images, "cls"), last[:, 0], rtol=1e-4, atol=1e-5)


def test_grey_images_feed_a_colour_model_repeated_and_large_ones_are_resized(tmp_path, digits):
    folder = image_base_model_folder(tmp_path / "rgb", seed=2, channels=3)
    embedder = ImageLayerEmbedder(inspect_model_folder(folder))
    grey = digits[0][:4]
    assert_allclose(embedder.embed(grey).layers, embedder.embed(np.repeat(grey, 3, axis=1)).layers, atol=1e-6)
    large = np.repeat(np.repeat(grey, 2, axis=2), 2, axis=3)  # 16x16, resized to the model's 8x8
    assert embedder.embed(large).layers.shape == (2, 4, 32)


def test_the_cache_keys_images_by_pixels(vit, digits):
    cache = EmbeddingCache()
    images = digits[0][:6]
    first = ImageLayerEmbedder(inspect_model_folder(vit), cache=cache)
    once = first.embed(np.concatenate([images, images[:2]]))  # duplicates are encoded once
    assert once.texts_encoded == 6 and first.forward_passes == 1
    again = ImageLayerEmbedder(inspect_model_folder(vit), cache=cache).embed(images)
    assert again.texts_encoded == 0
    assert_allclose(again.layers, once.layers[:, :6])
    changed = images.copy()
    changed[0, 0, 0, 0] = 1.0 - changed[0, 0, 0, 0]
    assert first.embed(changed).texts_encoded == 1


def test_bad_images_are_refused(vit):
    embedder = ImageLayerEmbedder(inspect_model_folder(vit))
    for bad in (np.zeros((2, 1, 8, 8), dtype=np.uint8), np.full((2, 1, 8, 8), 2.0), np.zeros((2, 2, 8, 8))):
        with pytest.raises(InvalidDataError):
            embedder.embed(bad)


def test_an_informative_encoder_outranks_one_blind_to_its_input(vit, digits, tmp_path):
    blind = image_base_model_folder(tmp_path / "blind", seed=1, blind=True)
    candidates = {
        "informative": ImageLayerEmbedder(inspect_model_folder(vit)),
        "blind": ImageLayerEmbedder(inspect_model_folder(blind)),
    }
    ranking = rank_base_models(candidates, digits[0], digits[1])
    assert ranking.names == ["informative", "blind"]
    blind_rows = candidates["blind"].embed(digits[0]).layers
    assert np.ptp(blind_rows, axis=1).max() < 1e-4  # every image embeds the same: nothing to separate
    for estimator in ("logme", "hscore", "knn"):
        assert (
            ranking.candidates[0].scores[estimator].layer_mean
            > ranking.candidates[1].scores[estimator].layer_mean
        )


def test_the_manifest_admits_image_base_models_with_an_input_shape():
    from specs.packaging.errors import InvalidPackageError
    from specs.packaging.manifest import check_manifest

    doc = {
        "name": "tiny-vit",
        "description": "d",
        "kind": "base_model",
        "modality": "image",
        "task": "embedding",
        "pooling": "mean",
        "input": {"shape": [1, 8, 8]},
        "output": {"dim": 32},
        "license": "MIT",
    }
    assert check_manifest(doc)["input"] == {"shape": [1, 8, 8]}
    with pytest.raises(InvalidPackageError) as caught:
        check_manifest({**doc, "input": {}})  # the probe images need a shape
    assert "input.shape" in caught.value.details
    with pytest.raises(InvalidPackageError) as caught:
        check_manifest({**doc, "modality": "table", "input": {"columns": ["a"]}})
    assert "text or image encoders" in caught.value.details["kind"]
