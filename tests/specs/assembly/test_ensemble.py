"""Best single and weighted ensembles on constructed member outputs."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs.assembly import Assembly, BestSingle, WeightedEnsemble
from specs.exceptions import DimensionMismatchError, NotFittedError, SerializationError


def _noisy_member(rng: np.random.Generator, y: np.ndarray, C: int, skill: float) -> np.ndarray:
    """Probabilities that put weight ``skill`` on the true class, the rest at random."""
    noise = rng.dirichlet(np.ones(C), size=y.shape[0])
    return skill * np.eye(C)[y] + (1 - skill) * noise


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


def test_weighted_average_equals_manual(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 50)
    members = [_noisy_member(rng, y, 3, s) for s in (0.1, 0.3, 0.5)]
    ens = WeightedEnsemble(n_classes=3).fit(members, weights=[1, 2, 1])
    expected = (members[0] + 2 * members[1] + members[2]) / 4
    assert_allclose(ens.predict_proba(members), expected, rtol=1e-12)
    assert_array_equal(ens.predict(members), expected.argmax(axis=1))


def test_fitted_weights_beat_the_worst_member(rng: np.random.Generator) -> None:
    y = rng.integers(0, 4, 400)
    members = [_noisy_member(rng, y, 4, s) for s in (0.0, 0.15, 0.3)]
    ens = WeightedEnsemble(n_classes=4).fit(members, y)
    # weight = skill above the uniform guess: a member at chance level gets (almost) none.
    assert ens.weights_[0] < 0.05 < ens.weights_[1] < ens.weights_[2]
    accs = [_accuracy(m, y) for m in members]
    assert _accuracy(ens.predict_proba(members), y) > min(accs)


def test_hard_label_voting_and_callables(rng: np.random.Generator) -> None:
    X = rng.normal(size=(30, 2))
    members = [
        lambda X: (X[:, 0] > 0).astype(int),
        lambda X: (X[:, 1] > 0).astype(int),
        lambda X: (X[:, 0] + X[:, 1] > 0).astype(int),
    ]
    ens = WeightedEnsemble(n_classes=2).fit(members, weights=[1, 1, 1])
    votes = np.stack([m(X) for m in members])
    assert_array_equal(ens.predict(members, X), (votes.sum(axis=0) >= 2).astype(int))


def test_regression_ensemble_and_best_single(rng: np.random.Generator) -> None:
    y = rng.normal(size=100)
    members = [y + rng.normal(scale=s, size=100) for s in (2.0, 0.5, 1.0)]
    ens = WeightedEnsemble(task="regression").fit(members, y)
    mse = [np.mean((m - y) ** 2) for m in members]
    assert np.mean((ens.predict(members) - y) ** 2) < max(mse)
    best = BestSingle(task="regression").fit(members, y)
    assert best.best_ == int(np.argmin(mse))
    assert_allclose(best.predict(members), members[best.best_])


def test_best_single_calls_only_the_chosen_member(rng: np.random.Generator) -> None:
    def broken(X: np.ndarray) -> np.ndarray:
        raise AssertionError("must not run")

    best = BestSingle(n_classes=2).fit([broken, lambda X: np.zeros(len(X), int)], scores=[0.1, 0.9])
    assert_array_equal(best.predict([broken, lambda X: np.zeros(len(X), int)], np.ones((3, 1))), [0, 0, 0])


def test_round_trip_and_errors(rng: np.random.Generator, tmp_path) -> None:
    y = rng.integers(0, 3, 40)
    members = [_noisy_member(rng, y, 3, s) for s in (0.2, 0.4)]
    with pytest.raises(NotFittedError):
        WeightedEnsemble(n_classes=3).to_bytes()
    ens = WeightedEnsemble(n_classes=3).fit(members, y)
    loaded = Assembly.from_bytes(ens.to_bytes())
    assert isinstance(loaded, WeightedEnsemble)
    assert_array_equal(loaded.predict_proba(members), ens.predict_proba(members))
    best = BestSingle(n_classes=3).fit(members, y)
    best.save(tmp_path / "best.lwa")
    assert BestSingle.load(tmp_path / "best.lwa").best_ == best.best_
    with pytest.raises(SerializationError, match="kind"):
        BestSingle.from_bytes(ens.to_bytes())
    with pytest.raises(DimensionMismatchError, match="fitted on 2"):
        ens.predict(members[:1])
