"""Missing columns predicted from a learnware's RKME against the exact conditional mean.

On a correlated Gaussian (unit variances) with K = 100 RKME points, Scott's bandwidth:
RMSE to the true conditional mean E[x_M | x_O] <= 0.25 (measured 0.12 and 0.17; plain
Nadaraya–Watson without the linear part measured 0.19), and the error on the true values is
within 6 % of the oracle's (measured 1.4 %), far below the marginal mean's. On a non-linear
relation (x2 = x0^2 - 1 + noise, linear part 0): RMSE to the conditional mean <= 0.5 (measured
0.42, the same as plain Nadaraya–Watson) against a spread of 0.98.
"""

from __future__ import annotations

import numpy as np
import pytest

from specs import TableStandardizer, default_gamma, rkme_fit
from specs.exceptions import InvalidParameterError
from specs.impute import filled_rms, impute_from_rkme, impute_raw, impute_rows
from specs.marginal import to_space_units
from specs.units import unit_rms


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(0)
    d = 5
    A = rng.normal(size=(d, d))
    C = A @ A.T / d + 0.3 * np.eye(d)
    sd = np.sqrt(np.diag(C))
    C = C / np.outer(sd, sd)
    X = rng.multivariate_normal(np.zeros(d), C, size=3000)
    spec = rkme_fit(X, 100, default_gamma(d), random_state=0)
    test = rng.multivariate_normal(np.zeros(d), C, size=500)
    return C, spec, test


def test_imputation_tracks_the_conditional_mean(gaussian):
    C, spec, T = gaussian
    obs, mis = [0, 1, 2], [3, 4]
    conditional = T[:, obs] @ np.linalg.solve(C[np.ix_(obs, obs)], C[np.ix_(obs, mis)])
    predicted = impute_from_rkme(T[:, obs], spec.Z_, spec.beta_, obs, mis)
    rmse_to_conditional = np.sqrt(np.mean((predicted - conditional) ** 2, axis=0))
    assert (rmse_to_conditional <= 0.25).all(), rmse_to_conditional
    ours = np.sqrt(np.mean((predicted - T[:, mis]) ** 2, axis=0))
    oracle = np.sqrt(np.mean((conditional - T[:, mis]) ** 2, axis=0))
    marginal = np.sqrt(np.mean(T[:, mis] ** 2, axis=0))
    assert (ours <= 1.06 * oracle).all(), (ours, oracle)
    assert ours[0] < 0.85 * marginal[0]  # column 3 depends on the observed ones: imputation beats the mean


def test_imputation_follows_a_non_linear_conditional_mean():
    # x2 = x0^2 - 1 + noise with x0, x1 ~ N(0, 1): E[x2 | x0, x1] = x0^2 - 1 exactly, and its best linear
    # predictor is the constant 0 (Cov(x0, x0^2) = 0), so only the kernel part can follow it.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 2))
    X = np.column_stack([X, X[:, 0] ** 2 - 1 + 0.3 * rng.normal(size=3000)])
    spec = rkme_fit(X, 100, default_gamma(3), random_state=0)
    T = rng.normal(size=(500, 2))
    T = T[np.abs(T[:, 0]) < 2]  # inside the data (the far-row fallback is tested below)
    truth = T[:, 0] ** 2 - 1
    predicted = impute_from_rkme(T, spec.Z_, spec.beta_, [0, 1], [2])[:, 0]
    rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
    assert rmse <= 0.5, rmse
    assert rmse < 0.5 * float(np.sqrt(np.mean(truth**2)))  # far better than the linear part alone


def test_rows_with_nan_columns_are_filled_and_the_rest_kept(gaussian):
    _, spec, T = gaussian
    rows = T[:20].copy()
    rows[:, [1, 4]] = np.nan
    filled = impute_rows(rows, spec.Z_, spec.beta_)
    np.testing.assert_array_equal(filled[:, [0, 2, 3]], T[:20, [0, 2, 3]])
    np.testing.assert_allclose(
        filled[:, [1, 4]], impute_from_rkme(T[:20, [0, 2, 3]], spec.Z_, spec.beta_, [0, 2, 3], [1, 4])
    )
    rows[0, 0] = np.nan
    with pytest.raises(InvalidParameterError):
        impute_rows(rows, spec.Z_, spec.beta_)


def test_far_rows_and_no_observed_columns_fall_back_to_the_weighted_mean(gaussian):
    _, spec, _ = gaussian
    w = np.clip(spec.beta_, 0, None) / np.clip(spec.beta_, 0, None).sum()
    mean = w @ spec.Z_[:, [3]]
    far = impute_from_rkme(np.full((2, 1), 1e6), spec.Z_, spec.beta_, [0], [3])
    np.testing.assert_allclose(far, np.tile(mean, (2, 1)))
    none = impute_from_rkme(np.zeros((3, 0)), spec.Z_, spec.beta_, [], [3])
    np.testing.assert_allclose(none, np.tile(mean, (3, 1)))


def test_imputed_columns_keep_the_developers_units_through_the_unit_free_step(gaussian):
    C, _, T = gaussian
    rng = np.random.default_rng(1)
    raw = 100.0 * rng.multivariate_normal(np.zeros(5), C, size=2000) + 500.0  # the developer's units
    std = TableStandardizer().fit(raw)
    spec = rkme_fit(std.transform(raw), 100, default_gamma(5), random_state=0)
    obs, mis = [0, 1, 2], [3, 4]
    user = (100.0 * T + 500.0) * 1000.0  # the same distribution, observed columns in other units
    rows = user.copy()
    rows[:, mis] = np.nan
    plan = {
        "observed": obs,
        "missing": mis,
        "mean": std.mean_.tolist(),
        "scale": std.scale_.tolist(),
        "unit_free": True,
        "rms": unit_rms(user[:, obs]).tolist(),
        "rms_missing": unit_rms(raw)[mis].tolist(),
        "Z": spec.Z_.tolist(),
        "beta": spec.beta_.tolist(),
        "gamma": None,
    }
    filled = impute_raw(rows, plan)
    rms = filled_rms(unit_rms(filled), plan)
    np.testing.assert_allclose(rms[obs], unit_rms(user[:, obs]), rtol=1e-12)
    np.testing.assert_array_equal(rms[mis], unit_rms(raw)[mis])
    # In the space's coordinates the imputed columns are exactly the regression's output ...
    space = to_space_units(filled, mean=std.mean_, scale=std.scale_, rms=rms)
    expected = impute_from_rkme(space[:, obs], spec.Z_, spec.beta_, obs, mis)
    np.testing.assert_allclose(space[:, mis], expected, rtol=1e-9, atol=1e-9)
    # ... and the unit factor (user units per developer unit) is 1000 on the observed columns, 1 on the
    # imputed ones; the filled rows' own RMS would read the conditional means' shrinkage as other units.
    factor = rms / unit_rms(raw)
    np.testing.assert_allclose(factor[obs], 1000.0, rtol=0.05)
    np.testing.assert_allclose(factor[mis], 1.0, rtol=1e-12)
    assert (unit_rms(filled)[mis] / unit_rms(raw)[mis] < 1.0).all()
