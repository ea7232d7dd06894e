"""Pooling and layer aggregation on hidden states whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.exceptions import DimensionMismatchError, InvalidDataError
from specs.transferability import knn_accuracy, logme, pool_hidden_states, score_layers


def test_mean_pooling_respects_the_mask(rng: np.random.Generator) -> None:
    H = rng.normal(size=(5, 7, 4))
    mask = (rng.random((5, 7)) < 0.6).astype(int)
    mask[:, 0] = 1
    expected = np.stack([H[i][mask[i] == 1].mean(axis=0) for i in range(5)])
    assert_allclose(pool_hidden_states(H, mask, "mean"), expected, rtol=1e-12)
    assert_allclose(pool_hidden_states(H, None, "first"), H[:, 0, :])
    assert_allclose(pool_hidden_states(H[:, 0, :]), H[:, 0, :])


def test_pooling_rejects_bad_masks(rng: np.random.Generator) -> None:
    H = rng.normal(size=(3, 4, 2))
    with pytest.raises(DimensionMismatchError, match="attention_mask"):
        pool_hidden_states(H, np.ones((3, 5)))
    with pytest.raises(InvalidDataError, match="no real token"):
        pool_hidden_states(H, np.zeros((3, 4)))


def _layers(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    n, T, h = 120, 5, 6
    y = rng.integers(0, 3, n)
    mask = np.ones((n, T))
    mask[:, 3:] = 0
    noise = [rng.normal(size=(n, T, h)) for _ in range(3)]
    # Only layer 1 carries the class (on its real tokens); padding holds junk.
    noise[1][:, :3, :] += 3.0 * rng.normal(size=(3, h))[y][:, None, :]
    for layer in noise:
        layer[:, 3:, :] = 100.0
    return noise, y, mask


@pytest.mark.parametrize("estimator", ["logme", "hscore", "knn"])
def test_best_layer_is_the_informative_one(rng: np.random.Generator, estimator: str) -> None:
    layers, y, mask = _layers(rng)
    res = score_layers(layers, y, estimator=estimator, aggregation="best", attention_mask=mask)
    assert res.layer == 1
    assert res.score == max(res.layer_scores)


def test_last_and_mean_score_the_right_matrices(rng: np.random.Generator) -> None:
    layers, y, mask = _layers(rng)
    pooled = [pool_hidden_states(layer, mask) for layer in layers]
    last = score_layers(layers, y, aggregation="last", attention_mask=mask)
    assert (last.layer, last.score) == (2, logme(pooled[2], y))
    mean = score_layers(layers, y, estimator=knn_accuracy, aggregation="mean", attention_mask=mask)
    assert mean.layer is None
    assert mean.score == knn_accuracy(np.mean(pooled, axis=0), y)
    assert mean.score > knn_accuracy(pooled[2], y)
