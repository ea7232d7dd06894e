"""Each member's RKME fills the columns the user lacks with its own conditional mean.

Two developers share x0, x1 ~ N(0, I) but relate x2 to them in opposite ways: A has
x2 = 0.8 x0 + 0.4 x1 + 0.5 e, B has x2 = -0.7 x0 + 0.6 x1 + 0.5 e, so E[x2 | x0, x1] is known in
closed form for each. A user lacking x2 gets, for member B, B's conditional mean and not A's (the
identified learnware's): RMSE to its closed form <= 0.25 (the tolerance of ``test_impute.py`` for
the same estimator and K = 100; measured 0.046 for A and 0.046 for B), while A's and B's conditional
means differ by an RMSE above 1 (measured 1.32: what B received before, from A's RKME).
"""

from __future__ import annotations

import numpy as np
import pytest

from specs import default_gamma, rkme_fit
from specs.impute import can_fill, impute_raw, member_fill, member_rows

A_COEF, B_COEF = np.array([0.8, 0.4]), np.array([-0.7, 0.6])


def developer(coef: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 2))
    X = np.column_stack([X, X @ coef + 0.5 * rng.normal(size=3000)])
    return rkme_fit(X, 100, default_gamma(3), random_state=seed)


@pytest.fixture(scope="module")
def rkmes():
    return developer(A_COEF, 0), developer(B_COEF, 1)


def plan_for(spec, *, unit_free: bool = False, rms_missing: float = 1.0) -> dict:
    """A plan as ``reuse_impute.plan_imputation`` builds it: x2 missing, A the identified learnware."""
    return {
        "observed": [0, 1],
        "missing": [2],
        "columns": ["x2"],
        "mean": [0.0, 0.0, 0.0],
        "scale": [1.0, 1.0, 1.0],
        "unit_free": unit_free,
        "rms": [1.0, 1.0],
        "rms_missing": [rms_missing],
        "gamma": None,
        "Z": spec.Z_.tolist(),
        "beta": spec.beta_.tolist(),
        "ridge": [],
    }


def user_rows(n: int = 400) -> np.ndarray:
    T = np.random.default_rng(5).normal(size=(n, 2))
    T = T[np.abs(T).max(axis=1) < 2]  # inside both developers' data
    return np.column_stack([T, np.full(T.shape[0], np.nan)])


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_each_member_receives_its_own_conditional_mean(rkmes):
    A, B = rkmes
    plan = plan_for(A)
    rows = impute_raw(user_rows(), plan)  # the identified learnware's fill: what the assembly sees
    fills = {"A": member_fill(A.Z_, A.beta_, None, plan), "B": member_fill(B.Z_, B.beta_, None, plan)}
    seen = {k: member_rows(rows, plan, f) for k, f in fills.items()}
    truth = {"A": rows[:, :2] @ A_COEF, "B": rows[:, :2] @ B_COEF}
    assert rmse(truth["A"], truth["B"]) > 1.0  # the two relations really differ
    for k in ("A", "B"):
        assert rmse(seen[k][:, 2], truth[k]) <= 0.25, k
        assert np.array_equal(seen[k][:, :2], rows[:, :2])  # the user's columns are the same for all
    assert rmse(seen["B"][:, 2], truth["A"]) > 1.0  # B does not get A's relation any more
    np.testing.assert_allclose(seen["A"], rows, atol=1e-12)  # A's own fill is the plan's


def test_a_member_fill_is_in_its_own_units_and_undoes_its_input_scale(rkmes):
    # Unit-free space: the RKME is in units of each column's RMS; B's developer measures x2 in units
    # whose RMS is 10, and the member's input map multiplies the rows by 2 (user -> its units).
    A, B = rkmes
    plan = plan_for(A, unit_free=True, rms_missing=3.0)
    rows = impute_raw(user_rows(), plan)
    fill = member_fill(B.Z_, B.beta_, np.array([1.0, 1.0, 10.0]), plan)
    scale_in = np.array([2.0, 2.0, 2.0])
    seen = member_rows(rows, plan, fill, scale_in)
    # B reads x0, x1 as 2 x (its RMS of them is 1): its conditional mean at 2 x, in its units.
    doubled = rows.copy()
    doubled[:, :2] *= 2.0
    unit_free_mean = member_rows(doubled, plan_for(A), member_fill(B.Z_, B.beta_, None, plan_for(A)))[:, 2]
    np.testing.assert_allclose(seen[:, 2] * scale_in[2], 10.0 * unit_free_mean, rtol=1e-12)
    inside = np.abs(rows[:, :2]).max(axis=1) < 1.0  # 2 x inside B's data
    assert rmse(seen[inside, 2] * 2.0 / 10.0, 2.0 * rows[inside, :2] @ B_COEF) <= 0.25


def test_a_member_conditions_on_the_observed_columns_as_it_sees_them(rkmes):
    # With several members the unit factor is a mixture of their RMS (specs.units.mixture_unit_factor):
    # a member whose own RMS of x0, x1 is 0.5 reads the user's unit-free rows x (input map 1) as 2 x in
    # its coordinates. Its model gets x0, x1 there, so x2 must be its conditional mean at 2 x, not at x
    # (the user's coordinates, what the fill did before: RMSE 0.48 to its closed form, measured; 0.05 now).
    A, B = rkmes
    plan = plan_for(A, unit_free=True)
    rows = impute_raw(user_rows(), plan)
    inside = np.abs(rows[:, :2]).max(axis=1) < 1.0
    fill = member_fill(B.Z_, B.beta_, np.array([0.5, 0.5, 1.0]), plan)
    assert fill is not None and fill["rms_observed"] == [0.5, 0.5]
    seen = member_rows(rows, plan, fill, np.ones(3))[inside, 2]
    assert rmse(seen, 2.0 * rows[inside, :2] @ B_COEF) <= 0.15
    at_users = member_rows(rows, plan, {k: v for k, v in fill.items() if k != "rms_observed"}, np.ones(3))
    assert rmse(at_users[inside, 2], 2.0 * rows[inside, :2] @ B_COEF) > 0.4  # the old fill's error


def test_kept_and_learned_columns_are_never_refilled(rkmes):
    A, B = rkmes
    plan = plan_for(A) | {
        "observed": [0],
        "missing": [1, 2],
        "columns": ["x1", "x2"],
        "rms": [1.0],
        "rms_missing": [1.0, 1.0],
        "ridge": [{"column": 1, "coef": [0.0], "intercept": 7.0}],
    }
    given = user_rows()
    given[:, 1] = np.nan
    rows = impute_raw(given, plan)
    fill = member_fill(B.Z_, B.beta_, None, plan)
    seen = member_rows(rows, plan, fill)
    assert (seen[:, 1] == 7.0).all()  # learned from the user's labelled rows: shared by all members
    assert not np.allclose(seen[:, 2], rows[:, 2])
    true = rows.copy()
    true[:, 2] = 42.0
    assert (member_rows(true, plan, fill, keep=[2])[:, 2] == 42.0).all()  # a true column stays true


def test_a_member_whose_rkme_cannot_fill_keeps_the_plans_fill(rkmes):
    A, _ = rkmes
    plan = plan_for(A)
    rows = impute_raw(user_rows(), plan)
    other_space = np.zeros((5, 4))
    assert not can_fill(other_space, np.ones(5), 3)
    assert not can_fill(A.Z_, -np.ones(A.Z_.shape[0]), 3)  # no positive weight to regress on
    assert member_fill(other_space, np.ones(5), None, plan) is None
    assert member_rows(rows, plan, None) is rows
