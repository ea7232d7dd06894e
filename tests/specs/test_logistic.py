"""specs.logistic against sklearn's LogisticRegression (the same objective, an independent
optimiser) and against its own first-order optimality condition (a finite-difference gradient
of an objective written out here)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError
from specs.logistic import fit_softmax_regression, penalised_loss, torch_linear


def _data(k: int, n: int = 120, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=(d, k)) + rng.normal(scale=1.5, size=(n, k))).argmax(axis=1)
    return X, y, rng.uniform(0.2, 3.0, size=n)


def _objective(
    X: np.ndarray, y: np.ndarray, s: np.ndarray, C: float, coef: np.ndarray, intercept: np.ndarray
) -> float:
    """Written out sample by sample: sum_i s_i * -log p(y_i) + ||coef||^2 / (2C)."""
    total = 0.0
    for x, label, w in zip(X, y, s, strict=True):
        z = coef @ x + intercept
        logits = np.concatenate([[0.0], z]) if coef.shape[0] == 1 else z
        total += w * (np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[label])
    return total + (coef**2).sum() / (2 * C)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("C", [0.1, 10.0])
def test_it_matches_sklearn_coefficients_and_probabilities(k: int, weighted: bool, C: float) -> None:
    X, y, s = _data(k)
    sw = s if weighted else None
    ours = fit_softmax_regression(X, y, C=C, sample_weight=sw, tol=1e-10, max_iter=5000)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=5000).fit(X, y, sample_weight=sw)
    assert ours.coef.shape == ref.coef_.shape and ours.intercept.shape == ref.intercept_.shape
    np.testing.assert_array_equal(ours.classes, ref.classes_)
    # Both stop at a gradient below 1e-10 (per unit weight) of a strongly convex objective.
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours.intercept, ref.intercept_, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


@pytest.mark.parametrize("k", [2, 4])
def test_the_gradient_at_the_optimum_is_zero(k: int) -> None:
    X, y, s = _data(k, n=60, d=3, seed=1)
    C = 0.5
    model = fit_softmax_regression(X, y, C=C, sample_weight=s, tol=1e-10, max_iter=5000)
    theta = np.concatenate([model.coef.ravel(), model.intercept])
    q, d = model.coef.shape

    def f(t: np.ndarray) -> float:
        return _objective(X, y, s, C, t[: q * d].reshape(q, d), t[q * d :])

    h = 1e-5
    numeric = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.shape[0])])
    assert np.abs(numeric).max() < 1e-4 * s.sum()
    value, g_coef, g_intercept = penalised_loss(model, X, y, C=C, sample_weight=s)
    assert value == pytest.approx(f(theta), rel=1e-10)
    assert np.abs(np.concatenate([g_coef.ravel(), g_intercept])).max() < 1e-4 * s.sum()
    # At zero coefficients the same finite difference is far from zero: the check can fail.
    start = np.array([(f(h * e) - f(-h * e)) / (2 * h) for e in np.eye(theta.shape[0])])
    assert np.abs(start).max() > 1.0


def test_string_labels_and_a_class_absent_from_y() -> None:
    X, y, _ = _data(3, seed=2)
    names = np.array(["ant", "bee", "cat", "dog"])
    model = fit_softmax_regression(X, names[y], classes=names, C=1.0)
    assert list(model.classes) == list(names) and model.coef.shape == (4, X.shape[1])
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 3].max() < 0.05  # "dog" never seen


def test_the_torch_module_gives_the_same_probabilities() -> None:
    torch = pytest.importorskip("torch")
    for k in (2, 3):
        X, y, _ = _data(k, seed=3)
        model = fit_softmax_regression(X, y, C=1.0)
        with torch.no_grad():
            logits = torch_linear(model)(torch.tensor(X, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(
            np.exp(logits) / np.exp(logits).sum(1, keepdims=True), model.predict_proba(X), atol=1e-5
        )


def test_bad_inputs_get_named_errors() -> None:
    X, y, _ = _data(3)
    with pytest.raises(InvalidParameterError):
        fit_softmax_regression(X, y, C=0.0)
    with pytest.raises(DimensionMismatchError):
        fit_softmax_regression(X[:-1], y)
    with pytest.raises(InvalidDataError, match="two classes"):
        fit_softmax_regression(X, np.zeros(len(y)))
    with pytest.raises(InvalidDataError, match="not in classes"):
        fit_softmax_regression(X, y, classes=[0, 1])
    with pytest.raises(InvalidDataError, match="sample_weight"):
        fit_softmax_regression(X, y, sample_weight=-np.ones(len(y)))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidDataError, match="NaN"):
        fit_softmax_regression(bad, y)
