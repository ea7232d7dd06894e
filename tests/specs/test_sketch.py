from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs.exceptions import DimensionMismatchError, InvalidParameterError, SerializationError
from specs.mmd import mmd_squared_batch
from specs.sketch import RFFSketch
from tests.specs.test_mmd import brute_mmd2


def pair(rng, d=4, K=8):
    Z1, Z2 = rng.normal(size=(K, d)), rng.normal(size=(K, d)) + 0.7
    return Z1, rng.dirichlet(np.ones(K)), Z2, rng.dirichlet(np.ones(K))


def sketch_errors(Z1, b1, Z2, b2, gamma, D, orthogonal, seeds=range(40)):
    exact = brute_mmd2(Z1, b1, Z2, b2, gamma)
    est = []
    for s in seeds:
        sk = RFFSketch(Z1.shape[1], gamma, D, orthogonal=orthogonal, random_state=s)
        est.append(float(np.sum((sk.transform(Z1, b1).astype(float) - sk.transform(Z2, b2)) ** 2)))
    return np.array(est) - exact, exact


def test_sketch_distance_is_unbiased_and_error_falls_as_inverse_sqrt_D(rng):
    Z1, b1, Z2, b2 = pair(rng)
    err_small, exact = sketch_errors(Z1, b1, Z2, b2, 0.3, 64, orthogonal=False)
    err_large, _ = sketch_errors(Z1, b1, Z2, b2, 0.3, 1024, orthogonal=False)
    # Mean within 3 standard errors of the exact MMD^2.
    assert abs(err_small.mean()) < 3 * err_small.std() / np.sqrt(len(err_small))
    ratio = np.sqrt(np.mean(err_small**2) / np.mean(err_large**2))
    assert 2.5 < ratio < 6.5, ratio  # sqrt(1024 / 64) = 4
    assert np.sqrt(np.mean(err_large**2)) < 0.1 * exact


def test_orthogonal_features_have_lower_error_than_iid(rng):
    Z1, b1, Z2, b2 = pair(rng, d=16, K=10)
    iid, _ = sketch_errors(Z1, b1, Z2, b2, 1 / 32, 256, orthogonal=False)
    orf, _ = sketch_errors(Z1, b1, Z2, b2, 1 / 32, 256, orthogonal=True)
    assert np.mean(orf**2) < 0.8 * np.mean(iid**2)


def test_orthogonal_directions_are_orthogonal_within_blocks():
    sk = RFFSketch(8, 0.5, 40, random_state=1)  # 20 frequencies: blocks of 8, 8, 4
    block = sk.W_[:8]
    gram = block @ block.T
    assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-12)
    assert sk.W_.shape == (20, 8)


def test_batch_equals_single_transforms_and_ignores_padding(rng):
    sk = RFFSketch(3, 0.4, 64, random_state=0)
    Zs, betas = rng.normal(size=(5, 6, 3)), rng.dirichlet(np.ones(6), size=5)
    betas[2, 4:] = 0.0
    Zs[2, 4:] = 50.0
    batch = sk.transform_batch(Zs, betas)
    assert batch.shape == (5, 64) and batch.dtype == np.float32
    for i in range(5):
        assert_allclose(batch[i], sk.transform(Zs[i], betas[i]), rtol=1e-6, atol=1e-7)
    assert_allclose(batch[2], sk.transform(Zs[2, :4], betas[2, :4]), rtol=1e-6, atol=1e-7)


def test_ranking_by_sketch_agrees_with_exact_mmd(rng):
    d, m, K = 8, 300, 20
    centres = rng.normal(size=(m, d)) * 0.8
    Zs = centres[:, None, :] + rng.normal(size=(m, K, d))
    betas = np.full((m, K), 1.0 / K)
    Zq = centres[17] + 0.2 + rng.normal(size=(K, d))
    bq = np.full(K, 1.0 / K)
    gamma = 1 / (2 * d)
    exact = mmd_squared_batch(Zq, bq, Zs, betas, gamma)
    sk = RFFSketch(d, gamma, 512, random_state=0)
    approx = np.sum((sk.transform_batch(Zs, betas) - sk.transform(Zq, bq)) ** 2, axis=1)
    assert int(np.argmin(exact)) in np.argsort(approx)[:10]
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(ranks(exact), ranks(approx))[0, 1] > 0.9


def test_round_trip_rebuilds_the_same_map_and_detects_tampering():
    sk = RFFSketch(5, 0.2, 128, orthogonal=True, random_state=7)
    back = RFFSketch.from_dict(json.loads(json.dumps(sk.to_dict())))
    assert_array_equal(back.W_, sk.W_)
    with pytest.raises(SerializationError, match="sha256"):
        RFFSketch.from_dict(sk.to_dict() | {"sha256": "0" * 64})
    with pytest.raises(SerializationError, match="gamma"):
        RFFSketch.from_dict(sk.to_dict() | {"gamma": -1})
    with pytest.raises(SerializationError, match="'D' is missing"):
        RFFSketch.from_dict({k: v for k, v in sk.to_dict().items() if k != "D"})


def test_bad_parameters_and_dimensions_raise():
    with pytest.raises(InvalidParameterError, match="even"):
        RFFSketch(3, 1.0, D=63)
    with pytest.raises(InvalidParameterError, match="gamma"):
        RFFSketch(3, 0.0)
    with pytest.raises(InvalidParameterError, match="random_state"):
        RFFSketch(3, 1.0, random_state=np.random.default_rng(0))
    with pytest.raises(DimensionMismatchError, match="sketch"):
        RFFSketch(3, 1.0, 16).transform(np.ones((2, 4)), np.ones(2))
