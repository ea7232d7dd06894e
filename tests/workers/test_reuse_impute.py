"""The imputation plan chooses a method per column (``workers.pipelines.reuse_impute``), a labelled
table may hold the columns the data lack: its rows get the learned columns out of fold (every score
on them reads that table, the cost rows too), the data's rows the ridge fitted on every labelled row."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.core.exceptions import ValidationFailed
from specs.impute import impute_raw
from specs.impute_ridge import OOF_FOLDS, out_of_fold, ridge_gcv
from specs.units import unit_rms
from workers.pipelines.reuse_impute import (
    MIN_RIDGE_ROWS,
    RIDGE_METHOD,
    RKME_METHOD,
    fill_table,
    learn_columns,
    public_plan,
)
from workers.pipelines.reuse_impute_cost import cost_rows

TARGET = ["a", "b", "c", "d"]
OBS, MIS = np.array([0, 2]), np.array([1, 3])


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 2.0, 3.0, 1.0] + [0.0, 5.0, -1.0, 2.0]
    X[:, 1] += 0.8 * X[:, 0] - 0.3 * X[:, 2]
    return X


def _plan(learned: list[dict] | None = None) -> dict:
    """An RKME plan whose points know nothing of the user's relation (standard normal in raw units),
    with ``learned`` columns (``learn_columns`` rows choosing the ridge) when given."""
    rng = np.random.default_rng(1)
    learned = [c for c in learned or [] if c["method"] == RIDGE_METHOD]
    methods = {"b": RKME_METHOD, "d": RKME_METHOD} | {r["name"]: RIDGE_METHOD for r in learned}
    return {
        "observed": OBS.tolist(),
        "missing": MIS.tolist(),
        "columns": ["b", "d"],
        "mean": [0.0] * 4,
        "scale": [1.0] * 4,
        "unit_free": False,
        "rms": [1.0, 1.0],
        "rms_missing": [1.0, 1.0],
        "gamma": None,
        "Z": rng.normal(size=(20, 4)).tolist(),
        "beta": [0.05] * 20,
        "methods": methods,
        "method": "per-column",
        "ridge": learned,
        "compared": [
            {k: c[k] for k in ("name", "rows", "error_ridge", "error_rkme", "method")} for c in learned
        ],
        "source": {"version_id": 1},
        "explanation": "",
    }


def test_a_column_is_learned_where_enough_labelled_rows_hold_it_and_the_ridge_predicts_it_better():
    X = _rows(MIN_RIDGE_ROWS)
    names = ["c", "a", "b", "label_free_extra"]  # any order; 'd' absent
    XL = np.column_stack([X[:, 2], X[:, 0], X[:, 1], np.zeros(len(X))])
    compared = learn_columns(TARGET, _plan(), (names, XL))
    assert [(r["name"], r["column"], r["method"]) for r in compared] == [("b", 1, RIDGE_METHOD)]
    row = compared[0]
    fit = ridge_gcv(X[:, [0, 2]], X[:, 1])
    np.testing.assert_allclose(row["coef"], fit.coef, rtol=1e-12)
    rms = unit_rms(X[:, [1]])[0]
    assert row["rows"] == MIN_RIDGE_ROWS and row["rms"] == pytest.approx(rms)
    oof = out_of_fold(X[:, [0, 2]], X[:, 1])
    assert row["error_ridge"] == pytest.approx(np.mean((oof - X[:, 1]) ** 2) / rms**2, rel=1e-9)
    assert row["error_ridge"] < row["error_rkme"]
    # One row fewer: the RKME keeps the column; a labelled file without a shared column teaches nothing.
    assert learn_columns(TARGET, _plan(), (names, XL[:-1])) == []
    assert learn_columns(TARGET, _plan(), (["a", "b"], X[:, :2])) == []


def test_the_rkme_keeps_a_column_it_predicts_better_than_a_ridge_on_the_labelled_rows():
    # A non-linear relation (y = x^2 - 1): the RKME's kernel part follows it, a linear ridge cannot.
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    Z = np.column_stack([x, x**2 - 1 + 0.1 * rng.normal(size=400)])
    plan = {
        "observed": [0],
        "missing": [1],
        "columns": ["y"],
        "mean": [0.0, 0.0],
        "scale": [1.0, 1.0],
        "unit_free": False,
        "rms": [1.0],
        "rms_missing": [1.0],
        "gamma": None,
        "Z": Z.tolist(),
        "beta": [1 / 400] * 400,
    }
    xl = rng.normal(size=40)
    XL = np.column_stack([xl, xl**2 - 1 + 0.1 * rng.normal(size=40)])
    (row,) = learn_columns(["x", "y"], plan, (["x", "y"], XL))
    assert row["method"] == RKME_METHOD and row["error_rkme"] < 0.2 < row["error_ridge"]
    filled = impute_raw(np.column_stack([xl, np.full(40, np.nan)]), plan)[:, 1]
    ms = float(np.mean(XL[:, 1] ** 2))
    assert row["error_rkme"] == pytest.approx(np.mean((filled - XL[:, 1]) ** 2) / ms, rel=1e-9)


def test_public_plan_lists_each_columns_method():
    X = _rows(40)
    plan = _plan(learn_columns(TARGET, _plan(), (["a", "b", "c"], X[:, :3])))
    shown = public_plan(plan)
    assert shown is not None and "Z" not in shown and "ridge" not in shown
    assert [(r["column"], r["method"]) for r in shown["per_column"]] == [
        ("b", RIDGE_METHOD),
        ("d", RKME_METHOD),
    ]
    assert shown["per_column"][0]["rows"] == 40


def _independent_folds(X: np.ndarray, seed: int) -> np.ndarray:
    """Column b of ``X`` predicted for each row by a ridge (GCV) refitted on the other folds."""
    n = X.shape[0]
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % OOF_FOLDS
    out = np.empty(n)
    for f in range(OOF_FOLDS):
        test = fold == f
        out[test] = ridge_gcv(X[~test][:, [0, 2]], X[~test, 1]).predict(X[test][:, [0, 2]])
    return out


@pytest.mark.parametrize("seed", [0, 3])
def test_a_labelled_table_gets_learned_columns_out_of_fold_and_the_data_the_all_rows_ridge(seed):
    X = _rows(40)
    plan = _plan(learn_columns(TARGET, _plan(), (["a", "b", "c"], X[:, :3])))
    filled, target, truth = fill_table(["c", "b", "a"], TARGET, X[:, [2, 1, 0]], plan, "labelled", seed=seed)
    assert target == TARGET and truth is not None
    np.testing.assert_allclose(truth[:, [0, 1, 2]], X[:, :3])
    assert np.isnan(truth[:, 3]).all()
    data_filled, _, none = fill_table(["a", "c"], TARGET, X[:, [0, 2]], plan, "data", seed=seed)
    assert none is None
    # The data (and the package, which keeps the plan) get b from the ridge fitted on all 40 rows ...
    everyone = ridge_gcv(X[:, [0, 2]], X[:, 1])
    np.testing.assert_allclose(data_filled[:, 1], everyone.predict(X[:, [0, 2]]), rtol=1e-10)
    # ... each labelled row gets it from a ridge that never saw the row (the old table held the
    # all-rows ridge's values here, which learned from the very rows the members are scored on).
    np.testing.assert_allclose(filled[:, 1], _independent_folds(X, seed), rtol=1e-10)
    assert np.mean((filled[:, 1] - X[:, 1]) ** 2) > np.mean((data_filled[:, 1] - X[:, 1]) ** 2)
    # d (from the RKME, which never saw the rows) and the observed columns are the data's.
    np.testing.assert_allclose(filled[:, [0, 2, 3]], data_filled[:, [0, 2, 3]], rtol=1e-12)
    with pytest.raises(ValidationFailed) as err:
        fill_table(["a", "b"], TARGET, X[:, :2], plan, "labelled")  # lacks 'c', which the data hold
    assert err.value.code == "submission:user:missing-columns"


def test_cost_rows_compare_the_out_of_fold_labelled_rows_with_the_true_columns():
    X = _rows(50, seed=3)
    plan = _plan(learn_columns(TARGET, _plan(), (["a", "b", "c"], X[:, :3])))
    imputed, _, truth = fill_table(["a", "b", "c"], TARGET, X[:, :3], plan, "labelled", seed=0)
    assert truth is not None
    filled, true, held = cost_rows(imputed, truth, plan)
    assert held == ["b"]
    np.testing.assert_allclose(true[:, 1], X[:, 1])
    np.testing.assert_allclose(true[:, [0, 2, 3]], imputed[:, [0, 2, 3]])
    np.testing.assert_allclose(filled[:, 1], _independent_folds(X, 0), rtol=1e-10)
    np.testing.assert_allclose(filled, imputed)  # the very rows the other stages score on
