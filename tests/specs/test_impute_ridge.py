"""Ridge with λ by generalised cross-validation (``specs.impute_ridge``) against an independent,
explicit computation, and columns learned from labelled rows inside an imputation plan.

The explicit computation forms the hat matrix with a numpy solve for every λ and evaluates
GCV = n ||y - ŷ||² / (n - 1 - tr H)² directly (no SVD); the chosen λ must be the same and the
coefficients agree to 1e-8 relative. On a correlated Gaussian with 40 labelled rows the learned
column's RMSE to the true conditional mean E[x_M | x_O] is <= 0.5 of the residual spread sd(x_M | x_O)
(least squares' expected excess is about sqrt(p/n) = 0.32 of it with p = 4 parameters; measured
0.39, 0.37, 0.26 for seeds 0-2, 0.12-0.63 over seeds 0-7), and its error on the true values is within
10 % of the oracle's (measured 6.8, 6.0, 4.1 %).

The labelled rows' out-of-fold fill (``fill_labelled``) is checked against a ridge per fold by
numpy's least squares on the augmented system [X_s; sqrt(λ) I] b = [y_c; 0] (λ from the explicit
GCV), to 1e-8 relative; and on a column the ridge overfits (30 rows, 10 observed columns that
explain about half its variance) the in-sample fill makes a member reading the column's sign look
0.15 better on the labelled rows than it is on 4,000 new rows (mean of 20 seeds; > 0.06 asserted),
while the out-of-fold fill is off by +0.013 (within 0.04 asserted).
"""

from __future__ import annotations

import numpy as np
import pytest

from specs.exceptions import InvalidParameterError
from specs.impute import filled_rms, impute_raw
from specs.impute_ridge import (
    DEFAULT_ALPHAS,
    OOF_FOLDS,
    RKME_METHOD,
    choose_column,
    fill_labelled,
    gcv_scores,
    ridge_gcv,
)


def _explicit(X: np.ndarray, y: np.ndarray, alphas) -> tuple[np.ndarray, float, float, np.ndarray]:
    """(coef, intercept, alpha, GCV per alpha) by a solve per λ on the unit-scale centred design."""
    mx, sd = X.mean(axis=0), X.std(axis=0)
    Xs, yc = (X - mx) / sd, y - y.mean()
    n, d = Xs.shape
    scores, coefs = [], []
    for a in alphas:
        A = Xs.T @ Xs + a * np.eye(d)
        H = Xs @ np.linalg.solve(A, Xs.T)
        r = yc - H @ yc
        scores.append(n * float(r @ r) / (n - 1 - np.trace(H)) ** 2)
        coefs.append(np.linalg.solve(A, Xs.T @ yc) / sd)
    best = int(np.argmin(scores))
    coef = coefs[best]
    return coef, float(y.mean() - mx @ coef), float(alphas[best]), np.array(scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ridge_gcv_matches_an_explicit_hat_matrix_computation(seed):
    rng = np.random.default_rng(seed)
    n, d = 30, 4
    X = rng.normal(size=(n, d)) * np.array([1.0, 10.0, 0.1, 3.0]) + 5.0  # mixed units
    X[:, 3] = X[:, 1] * 0.3 + 0.05 * rng.normal(size=n)  # nearly collinear with column 1
    y = X @ np.array([0.5, 0.02, 4.0, 0.1]) + 2.0 + rng.normal(scale=0.8, size=n)
    fit = ridge_gcv(X, y)
    coef, intercept, alpha, scores = _explicit(X, y, DEFAULT_ALPHAS)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    np.testing.assert_allclose(gcv_scores(Xs, y - y.mean(), DEFAULT_ALPHAS), scores, rtol=1e-8)
    assert fit.alpha == alpha
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-8, atol=1e-12)
    assert fit.intercept == pytest.approx(intercept, rel=1e-8, abs=1e-10)
    np.testing.assert_allclose(fit.predict(X), X @ coef + intercept, rtol=1e-9)


def test_gcv_picks_a_large_penalty_for_noise_and_a_small_one_for_signal():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    assert ridge_gcv(X, rng.normal(size=40)).alpha >= 10.0  # y independent of X: shrink
    assert ridge_gcv(X, X @ [1.0, -2.0, 0.5] + 0.01 * rng.normal(size=40)).alpha <= 0.01


def test_ridge_gcv_refuses_what_it_cannot_fit():
    with pytest.raises(InvalidParameterError):
        ridge_gcv(np.ones((2, 2)), np.ones(2))
    with pytest.raises(InvalidParameterError):
        ridge_gcv(np.ones((5, 2)), np.ones(4))
    with pytest.raises(InvalidParameterError):
        ridge_gcv(np.full((5, 2), np.nan), np.ones(5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_column_learned_from_40_labelled_rows_tracks_the_conditional_mean(seed):
    rng = np.random.default_rng(seed)
    d = 4
    A = rng.normal(size=(d, d))
    C = A @ A.T / d + 0.3 * np.eye(d)
    mean = np.array([1.0, -2.0, 5.0, 0.5])
    obs, j = [0, 1, 2], 3
    train = rng.multivariate_normal(mean, C, size=40)
    test = rng.multivariate_normal(mean, C, size=2000)
    slope = np.linalg.solve(C[np.ix_(obs, obs)], C[obs, j])
    conditional = mean[j] + (test[:, obs] - mean[obs]) @ slope
    fit = ridge_gcv(train[:, obs], train[:, j])
    predicted = fit.predict(test[:, obs])
    spread = np.sqrt(C[j, j] - C[obs, j] @ slope)  # sd(x_M | x_O)
    assert np.sqrt(np.mean((predicted - conditional) ** 2)) <= 0.5 * spread
    ours = np.sqrt(np.mean((predicted - test[:, j]) ** 2))
    oracle = np.sqrt(np.mean((conditional - test[:, j]) ** 2))
    assert ours <= 1.10 * oracle, (ours, oracle)


def _plan(rng, d=4):
    Z = rng.normal(size=(30, d))
    return {
        "observed": [0, 2],
        "missing": [1, 3],
        "columns": ["b", "d"],
        "mean": [0.0] * d,
        "scale": [1.0] * d,
        "unit_free": True,
        "rms": [1.0, 1.0],
        "rms_missing": [2.0, 3.0],
        "gamma": None,
        "Z": Z.tolist(),
        "beta": (np.ones(30) / 30).tolist(),
    }


def test_impute_raw_applies_each_columns_method():
    rng = np.random.default_rng(4)
    plan = _plan(rng)
    X = rng.normal(size=(10, 4))
    X[:, [1, 3]] = np.nan
    rkme_only = impute_raw(X, plan)
    learned = {**plan, "ridge": [{"column": 3, "coef": [0.5, -1.0], "intercept": 2.0, "rms": 7.0}]}
    learned["rms_missing"] = [2.0, 7.0]
    both = impute_raw(X, learned)
    np.testing.assert_allclose(both[:, 3], X[:, 0] * 0.5 - X[:, 2] + 2.0, rtol=1e-12)
    # The RKME column is the same whether or not another column is learned (each is E[x_j | x_O]).
    np.testing.assert_allclose(both[:, [0, 1, 2]], rkme_only[:, [0, 1, 2]], rtol=1e-12)
    # The learned column keeps the RMS of its true values (the user's units), the other the developer's.
    np.testing.assert_allclose(filled_rms(np.ones(4), learned), [1.0, 2.0, 1.0, 7.0])


def test_the_choice_of_method_does_not_depend_on_the_users_units_in_a_unit_free_plan():
    # Developer: y = x^2 - 1 (non-linear: the RKME's kernel part follows it, a linear ridge cannot).
    rng = np.random.default_rng(6)
    x = rng.normal(size=400)
    y = x**2 - 1 + 0.1 * rng.normal(size=400)
    rms_x, rms_y = float(np.sqrt(np.mean(x**2))), float(np.sqrt(np.mean(y**2)))
    plan = {
        "observed": [0],
        "missing": [1],
        "columns": ["y"],
        "mean": [0.0, 0.0],
        "scale": [1.0, 1.0],
        "unit_free": True,
        "rms_missing": [rms_y],
        "gamma": None,
        "Z": np.column_stack([x / rms_x, y / rms_y]).tolist(),  # unit-free coordinates
        "beta": [1 / 400] * 400,
    }
    xl = rng.normal(size=40)
    yl = xl**2 - 1 + 0.1 * rng.normal(size=40)
    rows = []
    for unit in (1.0, 10.0, 0.01):  # the user measures y (and x) in other units
        user_plan = {**plan, "rms": [float(np.sqrt(np.mean((unit * xl) ** 2)))]}
        rows.append(choose_column((unit * xl)[:, None], unit * yl, user_plan, 1))
    for row in rows:
        assert row["method"] == RKME_METHOD and row["error_rkme"] < 0.25 < row["error_ridge"]
        assert row["error_rkme"] == pytest.approx(rows[0]["error_rkme"], rel=1e-9)
        assert row["error_ridge"] == pytest.approx(rows[0]["error_ridge"], rel=1e-6)


def _lstsq_ridge(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(coef, intercept) of the GCV ridge, λ from :func:`_explicit`, the fit by numpy's least squares on
    the augmented system (an independent route to the same minimiser)."""
    _, _, alpha, _ = _explicit(X, y, DEFAULT_ALPHAS)
    mx, sd = X.mean(axis=0), X.std(axis=0)
    Xs, yc = (X - mx) / sd, y - y.mean()
    A = np.vstack([Xs, np.sqrt(alpha) * np.eye(X.shape[1])])
    b = np.linalg.lstsq(A, np.concatenate([yc, np.zeros(X.shape[1])]), rcond=None)[0] / sd
    return b, float(y.mean() - mx @ b)


def _learned_plan(X: np.ndarray, obs: list[int], j: int) -> dict:
    """A plan whose only missing column ``j`` is learned from all of ``X``'s rows (as a plan keeps it)."""
    fit = ridge_gcv(X[:, obs], X[:, j])
    return {
        "observed": obs,
        "missing": [j],
        "ridge": [{"column": j, **fit.to_json(), "rows": X.shape[0]}],
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_each_labelled_row_is_filled_by_a_ridge_fitted_without_it(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(37, 4)) * [1.0, 3.0, 0.2, 1.0] + [0.0, 4.0, 1.0, 0.0]
    X[:, 3] = 0.7 * X[:, 0] - 0.4 * X[:, 1] + rng.normal(scale=0.5, size=37)
    obs, j = [0, 1, 2], 3
    plan = _learned_plan(X, obs, j)
    given = X.copy()
    given[:, j] = np.nan
    filled = fill_labelled(given, X, plan, seed=seed)
    np.testing.assert_array_equal(filled[:, obs], X[:, obs])
    fold = np.empty(37, dtype=int)
    fold[np.random.default_rng(seed).permutation(37)] = np.arange(37) % OOF_FOLDS
    for f in range(OOF_FOLDS):
        out = fold == f
        coef, intercept = _lstsq_ridge(X[~out][:, obs], X[~out, j])
        np.testing.assert_allclose(filled[out, j], X[out][:, obs] @ coef + intercept, rtol=1e-8)
    # A row that did not teach the column (its true value unknown) keeps the all-rows ridge's value.
    truth = X.copy()
    truth[5, j] = np.nan
    plan["ridge"][0]["rows"] = 36
    partial = fill_labelled(given, truth, plan, seed=seed)
    coef, intercept = _lstsq_ridge(X[:, obs], X[:, j])
    assert partial[5, j] == pytest.approx(X[5, obs] @ coef + intercept, rel=1e-8)
    # Rows the ridge was not fitted on are refused, not silently scored.
    with pytest.raises(InvalidParameterError):
        fill_labelled(given[:30], X[:30], _learned_plan(X, obs, j))


def _half_explained(rng: np.random.Generator, w: np.ndarray, n: int) -> np.ndarray:
    """Rows whose column 10 the 10 observed columns explain about half of (the rest noise to overfit)."""
    X = rng.normal(size=(n, 11))
    X[:, 10] = X[:, :10] @ w + rng.normal(size=n)
    return X


def _sign_accuracy(filled: np.ndarray, truth: np.ndarray) -> float:
    """A member that reads column 10's sign, the label being the true column's sign."""
    return float(np.mean((filled[:, 10] > 0) == (truth[:, 10] > 0)))


def test_the_in_sample_fill_flatters_a_member_on_the_labelled_rows_and_the_out_of_fold_one_does_not():
    gaps_in, gaps_oof = [], []
    obs = list(range(10))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=10) * 0.3
        X, new = _half_explained(rng, w, 30), _half_explained(rng, w, 4000)
        plan = _learned_plan(X, obs, 10)
        given = X.copy()
        given[:, 10] = np.nan
        coef, intercept = _lstsq_ridge(X[:, obs], X[:, 10])  # the package's ridge, independently
        delivered = new.copy()
        delivered[:, 10] = new[:, obs] @ coef + intercept
        in_sample = impute_raw(given, plan)  # what the stages scored on before
        np.testing.assert_allclose(in_sample[:, 10], X[:, obs] @ coef + intercept, rtol=1e-8)
        gaps_in.append(_sign_accuracy(in_sample, X) - _sign_accuracy(delivered, new))
        gaps_oof.append(_sign_accuracy(fill_labelled(given, X, plan), X) - _sign_accuracy(delivered, new))
    assert np.mean(gaps_in) > 0.06, gaps_in
    assert abs(np.mean(gaps_oof)) < 0.04, gaps_oof
