"""The labelled rows' ridge against each member's OWN RKME, per member and column
(``specs.impute_ridge.choose_column``'s ``members``, ``specs.impute.member_rows``).

Two developers share x0, x1 ~ N(0, I) and relate x2 to them in opposite ways:
A: x2 = (x0² - 1) + 0.8 x1 + 0.3 e,   B: x2 = -(x0² - 1) - 0.8 x1 + 0.3 e.
The user's 60 labelled rows follow A. The (linear) ridge cannot follow x0², so A's RKME (whose
kernel part does) predicts the column better than the ridge: relative errors measured 0.21 (A's
RKME) vs 0.71 (ridge), while B's RKME, with the opposite relation, measured 3.0. So the ridge must
lose for A and win for B, whichever of the two is the identified learnware. The errors are checked
against an independent numpy computation: a ridge per fold by least squares on the augmented system
(``tests/specs/test_impute_ridge._lstsq_ridge``) and the RKME's conditional mean written out here
(weighted moments, Scott's bandwidth, Nadaraya-Watson on the residuals), to 1e-8 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from specs import default_gamma, rkme_fit
from specs.impute import impute_raw, member_fill, member_rows
from specs.impute_ridge import OOF_FOLDS, RIDGE_METHOD, RKME_METHOD, choose_column, fill_labelled
from tests.specs.test_impute_members import plan_for
from tests.specs.test_impute_ridge import _lstsq_ridge


def relation(X: np.ndarray, sign: float) -> np.ndarray:
    return sign * (X[:, 0] ** 2 - 1.0 + 0.8 * X[:, 1])


def developer(sign: float, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 2))
    X = np.column_stack([X, relation(X, sign) + 0.3 * rng.normal(size=3000)])
    return rkme_fit(X, 100, default_gamma(3), random_state=seed)


@pytest.fixture(scope="module")
def rkmes():
    return developer(1.0, 0), developer(-1.0, 1)


def user(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x0, x1) inside both developers' data, and x2 by A's relation."""
    X = np.random.default_rng(seed).normal(size=(3 * n, 2))
    X = X[np.abs(X).max(axis=1) < 2][:n]
    return X, relation(X, 1.0) + 0.3 * np.random.default_rng(seed + 100).normal(size=n)


def numpy_conditional_mean(Xo: np.ndarray, Z: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """E[x2 | x0, x1] under the weighted points, written out (specs.impute's estimator, independently)."""
    w = np.clip(beta, 0, None) / np.clip(beta, 0, None).sum()
    mu = w @ Z
    C = (Z - mu).T @ ((Z - mu) * w[:, None])
    slope = np.linalg.solve(C[:2, :2] + 1e-6 * np.eye(2), C[:2, 2])
    linear = lambda P: mu[2] + (P - mu[:2]) @ slope  # noqa: E731
    h = (1.0 / np.sum(w * w)) ** (-1.0 / (2 + 4))
    d2 = ((Xo[:, None, :] - Z[None, :, :2]) ** 2).sum(axis=2)
    K = w[None, :] * np.exp(-d2 / (2 * h * h))
    return linear(Xo) + (K @ (Z[:, 2] - linear(Z[:, :2]))) / K.sum(axis=1)


def numpy_oof_error(Xo: np.ndarray, y: np.ndarray) -> float:
    fold = np.empty(y.size, dtype=int)
    fold[np.random.default_rng(0).permutation(y.size)] = np.arange(y.size) % OOF_FOLDS
    pred = np.empty(y.size)
    for f in range(OOF_FOLDS):
        out = fold == f
        coef, intercept = _lstsq_ridge(Xo[~out], y[~out])
        pred[out] = Xo[out] @ coef + intercept
    return float(np.mean((pred - y) ** 2) / np.mean(y**2))


@pytest.mark.parametrize("identified", ["A", "B"])
def test_the_ridge_wins_for_the_member_whose_relation_differs_and_loses_where_it_matches(rkmes, identified):
    A, B = rkmes
    plan = plan_for(A if identified == "A" else B)
    fills = {"A": member_fill(A.Z_, A.beta_, None, plan), "B": member_fill(B.Z_, B.beta_, None, plan)}
    Xo, y = user(60, 3)
    row = choose_column(Xo, y, plan, 2, fills)
    assert row["members"]["A"]["method"] == RKME_METHOD
    assert row["members"]["B"]["method"] == RIDGE_METHOD
    assert row["method"] == row["members"][identified]["method"]  # the plan's RKME is the identified one's
    assert row["error_rkme"] == pytest.approx(row["members"][identified]["error_rkme"], rel=1e-12)
    # Against the independent computation.
    assert row["error_ridge"] == pytest.approx(numpy_oof_error(Xo, y), rel=1e-8)
    for key, spec in (("A", A), ("B", B)):
        expected = np.mean((numpy_conditional_mean(Xo, spec.Z_, spec.beta_) - y) ** 2) / np.mean(y**2)
        assert row["members"][key]["error_rkme"] == pytest.approx(expected, rel=1e-8), key
    # The margins are wide (module docstring), not a coin flip on 60 rows.
    assert row["members"]["A"]["error_rkme"] < 0.5 * row["error_ridge"]
    assert row["members"]["B"]["error_rkme"] > 2.0 * row["error_ridge"]


def test_each_member_sees_its_own_choice_new_rows_and_labelled_rows_alike(rkmes):
    A, B = rkmes
    plan = plan_for(B)  # B identified: the plan's rows hold the ridge (B's RKME lost to it)
    base = {"A": member_fill(A.Z_, A.beta_, None, plan), "B": member_fill(B.Z_, B.beta_, None, plan)}
    XL, yL = user(60, 3)
    row = choose_column(XL, yL, plan, 2, base)
    plan = plan | {"ridge": [row]}
    fills = {
        k: member_fill(s.Z_, s.beta_, None, plan, [2] if row["members"][k]["method"] == RIDGE_METHOD else [])
        for k, s in (("A", A), ("B", B))
    }
    assert fills["A"]["ridge"] == [] and fills["B"]["ridge"] == [2]
    # New rows: A gets its own RKME's conditional mean, B the ridge fitted on every labelled row.
    Xn, yn = user(400, 9)
    rows = impute_raw(np.column_stack([Xn, np.full(len(Xn), np.nan)]), plan)
    seen = {k: member_rows(rows, plan, f)[:, 2] for k, f in fills.items()}
    coef, intercept = _lstsq_ridge(XL, yL)
    np.testing.assert_allclose(seen["B"], Xn @ coef + intercept, rtol=1e-8)
    np.testing.assert_allclose(seen["A"], numpy_conditional_mean(Xn, A.Z_, A.beta_), rtol=1e-8)
    # A's choice holds on new rows: its RKME follows the user's relation, the linear ridge cannot.
    assert np.mean((seen["A"] - yn) ** 2) < 0.5 * np.mean((seen["B"] - yn) ** 2)
    # Labelled rows: B's ridge column is out of fold (fill_labelled), A's its RKME's.
    given = np.column_stack([XL, np.full(len(XL), np.nan)])
    filled = fill_labelled(given, np.column_stack([XL, yL]), plan)
    fold = np.empty(len(yL), dtype=int)
    fold[np.random.default_rng(0).permutation(len(yL))] = np.arange(len(yL)) % OOF_FOLDS
    for f in range(OOF_FOLDS):
        out = fold == f
        c, i = _lstsq_ridge(XL[~out], yL[~out])
        np.testing.assert_allclose(member_rows(filled, plan, fills["B"])[out, 2], XL[out] @ c + i, rtol=1e-8)
    np.testing.assert_allclose(
        member_rows(filled, plan, fills["A"])[:, 2], numpy_conditional_mean(XL, A.Z_, A.beta_), rtol=1e-8
    )
    # A fill without per-member choices (recipes before them) keeps the plan's ridge column.
    old = member_fill(A.Z_, A.beta_, None, plan)
    assert "ridge" not in old and np.array_equal(member_rows(rows, plan, old), rows)


def test_the_choice_does_not_depend_on_a_members_units_in_a_unit_free_plan(rkmes):
    # Unit-free coordinates: the RKMEs are in units of each column's RMS; a member whose developer
    # measures x2 in units of RMS 10 gets the same error (its value goes through the unit-free step).
    A, B = rkmes
    plan = plan_for(A, unit_free=True)
    Xo, y = user(60, 3)
    plan["rms"] = np.sqrt(np.mean(Xo**2, axis=0)).tolist()
    rows = []
    for scale in (1.0, 10.0):
        fills = {
            k: member_fill(s.Z_, s.beta_, np.array([1.0, 1.0, scale]), plan) for k, s in (("A", A), ("B", B))
        }
        rows.append(choose_column(Xo, 7.0 * y, plan, 2, fills))
    for k in ("A", "B"):
        assert rows[0]["members"][k]["error_rkme"] == pytest.approx(
            rows[1]["members"][k]["error_rkme"], rel=1e-9
        )
    assert (
        rows[0]["members"]["A"]["method"] == RKME_METHOD and rows[0]["members"]["B"]["method"] == RIDGE_METHOD
    )
