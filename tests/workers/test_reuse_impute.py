"""The imputation plan chooses a method per column (``workers.pipelines.reuse_impute``), a labelled
table may hold the columns the data lack, and the cost rows predict learned columns out of fold."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.core.exceptions import ValidationFailed
from specs.impute import impute_raw
from specs.impute_ridge import ridge_gcv
from specs.units import unit_rms
from workers.pipelines.reuse_impute import (
    MIN_RIDGE_ROWS,
    RIDGE_METHOD,
    RKME_METHOD,
    fill_table,
    learn_columns,
    public_plan,
)
from workers.pipelines.reuse_impute_cost import COST_FOLDS, cost_rows, out_of_fold_ridge

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
    oof = out_of_fold_ridge(X[:, [0, 2]], X[:, 1])
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


def test_a_labelled_table_holding_a_missing_column_is_filled_like_the_data_and_keeps_the_truth():
    X = _rows(40)
    plan = _plan(learn_columns(TARGET, _plan(), (["a", "b", "c"], X[:, :3])))
    filled, target, truth = fill_table(["c", "b", "a"], TARGET, X[:, [2, 1, 0]], plan, "labelled")
    assert target == TARGET and truth is not None
    np.testing.assert_allclose(truth[:, [0, 1, 2]], X[:, :3])
    assert np.isnan(truth[:, 3]).all()
    # The rows members see are the package's: b from the ridge (not its true values), d from the RKME.
    data_filled, _, none = fill_table(["a", "c"], TARGET, X[:, [0, 2]], plan, "data")
    assert none is None
    np.testing.assert_allclose(filled, data_filled, rtol=1e-12)
    with pytest.raises(ValidationFailed) as err:
        fill_table(["a", "b"], TARGET, X[:, :2], plan, "labelled")  # lacks 'c', which the data hold
    assert err.value.code == "submission:user:missing-columns"


def test_cost_rows_predict_a_learned_column_out_of_fold():
    X = _rows(50, seed=3)
    plan = _plan(learn_columns(TARGET, _plan(), (["a", "b", "c"], X[:, :3])))
    imputed, _, truth = fill_table(["a", "b", "c"], TARGET, X[:, :3], plan, "labelled")
    assert truth is not None
    filled, true, held = cost_rows(imputed, truth, plan, seed=0)
    assert held == ["b"]
    np.testing.assert_allclose(true[:, 1], X[:, 1])
    np.testing.assert_allclose(true[:, [0, 2, 3]], imputed[:, [0, 2, 3]])
    oof = out_of_fold_ridge(X[:, [0, 2]], X[:, 1], seed=0)
    np.testing.assert_allclose(filled[:, 1], oof)
    # Independently: every row's value comes from a ridge that never saw it.
    fold = np.empty(50, dtype=int)
    fold[np.random.default_rng(0).permutation(50)] = np.arange(50) % COST_FOLDS
    for f in range(COST_FOLDS):
        test = fold == f
        fit = ridge_gcv(X[~test][:, [0, 2]], X[~test, 1])
        np.testing.assert_allclose(oof[test], fit.predict(X[test][:, [0, 2]]), rtol=1e-10)
    in_sample = imputed[:, 1]
    assert np.mean((oof - X[:, 1]) ** 2) > np.mean((in_sample - X[:, 1]) ** 2)  # in-sample is optimistic
