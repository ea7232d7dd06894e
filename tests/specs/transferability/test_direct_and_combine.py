"""Direct metrics against sklearn, and the normalise-and-combine ranking."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import metrics

from specs.exceptions import DimensionMismatchError, InvalidDataError
from specs.transferability import (
    accuracy,
    combine_scores,
    direct_scores,
    macro_f1,
    normalise_scores,
    r2_score,
    rmse,
)


def test_classification_metrics_equal_sklearn(rng: np.random.Generator) -> None:
    t, p = rng.integers(0, 5, 80), rng.integers(0, 6, 80)
    assert accuracy(t, p) == pytest.approx(metrics.accuracy_score(t, p), abs=1e-15)
    assert macro_f1(t, p) == pytest.approx(
        metrics.f1_score(t, p, average="macro", zero_division=0), abs=1e-15
    )
    assert direct_scores(t, p, task="classification")["macro_f1"] == macro_f1(t, p)


def test_regression_metrics_equal_sklearn(rng: np.random.Generator) -> None:
    t, p = rng.normal(size=50), rng.normal(size=50)
    assert_allclose(rmse(t, p), np.sqrt(metrics.mean_squared_error(t, p)), rtol=1e-12)
    assert_allclose(r2_score(t, p), metrics.r2_score(t, p), rtol=1e-12)
    with pytest.raises(InvalidDataError, match="constant"):
        r2_score(np.ones(4), np.arange(4))
    with pytest.raises(DimensionMismatchError):
        rmse(t, p[:3])


def test_normalisations() -> None:
    v = np.array([2.0, 4.0, np.nan, 3.0])
    assert_allclose(normalise_scores(v, "minmax"), [0.0, 1.0, np.nan, 0.5])
    assert_allclose(normalise_scores(v, "rank"), [0.0, 1.0, np.nan, 0.5])
    assert_allclose(
        normalise_scores(v, "zscore"), [(2 - 3) / np.std([2, 4, 3]), 1 / np.std([2, 4, 3]), np.nan, 0]
    )
    assert_allclose(normalise_scores([5.0, 5.0], "minmax"), [0.5, 0.5])
    assert_allclose(normalise_scores([1.0, 9.0, 2.0, 3.0]), [0.0, 1.0, 1 / 3, 2 / 3])


def test_combine_weights_and_missing_scores() -> None:
    scores = {"logme": [0.1, 0.3, 0.2], "knn": [0.9, 0.5, np.nan], "rmse": [1.0, 3.0, 2.0]}
    got = combine_scores(scores, {"logme": 1.0, "knn": 3.0, "rmse": 0.0}, method="minmax")
    # candidate 2 has no kNN score: its combination uses LogME alone.
    assert_allclose(got, [(0 + 3 * 1) / 4, (1 + 0) / 4, 0.5])
    assert_allclose(combine_scores({"rmse": [1.0, 3.0, 2.0]}, {"rmse": 1.0}), [1.0, 0.0, 0.5])
    # defaults: rank-normalised 0.5 LogME + 0.5 kNN, H-score weight 0.
    default = combine_scores({"logme": [1.0, 2.0], "knn": [0.9, 0.8], "hscore": [5.0, 1.0]})
    assert_allclose(default, [0.5, 0.5])
