"""The stitching head learns labels that need information from two learnwares."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from specs.assembly import Assembly, StitchingHead


def _task(rng: np.random.Generator, n: int):
    X = rng.normal(size=(n, 2))
    a, b = (X[:, 0] > 0).astype(int), (X[:, 1] > 0).astype(int)
    # learnware 1 sees only a, learnware 2 only b; the user's 4 classes need both.
    out1 = np.stack([1 - a, a], axis=1) * 0.9 + 0.05
    out2 = np.stack([1 - b, b], axis=1) * 0.9 + 0.05
    return [out1, out2], 2 * a + b


def test_head_beats_the_best_single_member(rng: np.random.Generator) -> None:
    blocks, y = _task(rng, 400)
    test_blocks, y_test = _task(np.random.default_rng(1), 400)
    both = StitchingHead(random_state=0, max_epochs=150).fit(blocks, y)
    single = [StitchingHead(random_state=0, max_epochs=150).fit([blk], y) for blk in blocks]
    acc_both = (both.predict(test_blocks) == y_test).mean()
    acc_single = [(h.predict([tb]) == y_test).mean() for h, tb in zip(single, test_blocks, strict=True)]
    assert acc_both > 0.95
    assert acc_both > max(acc_single) + 0.3, (acc_both, acc_single)


def test_seeded_training_is_reproducible_and_round_trips(rng: np.random.Generator) -> None:
    blocks, y = _task(rng, 200)
    h1 = StitchingHead(hidden=8, random_state=3).fit(blocks, y)
    h2 = StitchingHead(hidden=8, random_state=3).fit(blocks, y)
    assert_array_equal(h1.params_["W1"], h2.params_["W1"])
    loaded = Assembly.from_bytes(h1.to_bytes())
    assert isinstance(loaded, StitchingHead)
    assert_allclose(loaded.predict_proba(blocks), h1.predict_proba(blocks), rtol=1e-12)
    assert loaded.n_epochs_ == h1.n_epochs_ <= h1.max_epochs


def test_regression_head_with_raw_features(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 3))
    y = X[:, 0] * 2 + X[:, 1] - X[:, 2]
    member = X[:, 0] * 2  # a learnware that knows part of the answer
    head = StitchingHead(task="regression", random_state=0).fit([member, X], y)
    assert np.mean((head.predict([member, X]) - y) ** 2) < 0.05 * np.mean((member - y) ** 2)


def test_the_linear_classifier_is_the_l2_logistic_regression_of_sklearn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    X, member = rng.normal(size=(90, 3)), rng.dirichlet(np.ones(3), size=90)
    y = (X[:, 0] + member[:, 1] + rng.normal(scale=0.5, size=90) > 0.3).astype(int) + (X[:, 1] > 1.0)
    head = StitchingHead(weight_decay=0.01).fit([X, member], y)
    Z = np.hstack([X, member])
    Zs = (Z - Z.mean(0)) / Z.std(0)
    ref = LogisticRegression(C=1.0 / (0.01 * 90), tol=1e-10, max_iter=5000).fit(Zs, y)
    np.testing.assert_allclose(head.predict_proba([X, member]), ref.predict_proba(Zs), atol=1e-4)
