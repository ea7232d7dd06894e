"""More class-separable features must score higher under every estimator."""

from __future__ import annotations

import numpy as np
import pytest

from specs.transferability import hscore, knn_accuracy, logme, regularized_hscore

ESTIMATORS = {
    "logme": logme,
    "hscore": hscore,
    "regularized_hscore": regularized_hscore,
    "knn_euclidean": lambda F, y: knn_accuracy(F, y, metric="euclidean"),
    "knn_cosine": lambda F, y: knn_accuracy(F, y, metric="cosine"),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_more_separable_features_score_higher(rng: np.random.Generator, name: str) -> None:
    n, d, C = 300, 16, 4
    y = rng.integers(0, C, n)
    centres = rng.normal(size=(C, d))
    noise = rng.normal(size=(n, d))
    scores = [ESTIMATORS[name](sep * centres[y] + noise, y) for sep in (0.2, 0.6, 1.5)]
    assert scores[0] < scores[1] < scores[2], scores
