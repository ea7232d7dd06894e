"""A column the user's data lack but their labelled file holds is learned from the labelled rows
(ridge, ``labelled-rows-ridge``), through the reuse pipeline (real sandbox, digits market); the
evaluation reports what imputation cost: each member on the labelled rows with the true columns
against the same rows with them imputed (out of fold, as the ranking scores them), recomputed here
from the model itself.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.core.files.base import ContentFile

from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs.impute_ridge import out_of_fold, ridge_gcv
from tests.support.market import COLUMNS, csv_bytes, user_task
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_impute import MIN_RIDGE_ROWS, RIDGE_METHOD, RKME_METHOD
from workers.pipelines.reuse_package import PackagePredictor

pytestmark = pytest.mark.django_db
LACKING = ["p27", "p36"]  # two central, informative pixels


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _run(owner: Any, data: bytes, labelled: bytes, report: Any) -> Submission:
    submission = submission_create(
        owner=owner,
        data_format="csv",
        data=ContentFile(data, name="d.csv"),
        labelled=ContentFile(labelled, name="l.csv"),
        labelled_format="csv",
        requirements={"methods": ["best_single", "weighted_ensemble"], "max_modules": 2},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    return Submission.objects.get(id=submission.id)


def _accuracy(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(np.mean(model(torch.from_numpy(X.astype(np.float32))).argmax(1).numpy() == y))


def test_columns_the_labelled_file_holds_are_learned_from_it_and_their_cost_is_reported(
    market, alice, report
):
    task = user_task({"upright": 1.0}, n=200, n_labelled=60, seed=7)
    # In this user's scans each lacking pixel repeats its left neighbour (their own relation, which the
    # developer's RKME does not know): the labelled rows teach it, so the ridge wins the comparison.
    for X in (task["X"], task["X_l"]):
        for c in LACKING:
            X[:, COLUMNS.index(c)] = X[:, COLUMNS.index(c) - 1]
    keep = [c for c in COLUMNS if c not in LACKING]
    idx = [COLUMNS.index(c) for c in keep]
    Xg, Xl, yl = task["X"][:, idx], task["X_l"], task["y_l"]
    # The labelled file holds every column (the data lack two): it used to be refused.
    sub = _run(alice, csv_bytes(Xg, columns=keep), csv_bytes(Xl, yl, columns=COLUMNS), report)
    assert sub.package, sub.results
    imputed = sub.results["spec"]["columns"]["imputed"]
    assert imputed["columns"] == LACKING and imputed["method"] == RIDGE_METHOD
    assert [(r["column"], r["method"], r["rows"]) for r in imputed["per_column"]] == [
        (c, RIDGE_METHOD, Xl.shape[0]) for c in LACKING
    ]
    assert all(r["error_ridge"] < r["error_rkme"] for r in imputed["per_column"])
    assert "learned from your 60 labelled rows" in imputed["explanation"]
    # The ridge against each member's own RKME: both errors per member, the smaller chose (here the
    # user's relation is no developer's: the ridge wins for every member).
    for row in imputed["per_column"]:
        for f in row["filled_by"]:
            assert f["error_ridge"] == row["error_ridge"] and f["rkme"] == "own"
            assert f["method"] == (RIDGE_METHOD if f["error_ridge"] < f["error_rkme"] else RKME_METHOD)
        own = {f["version_id"]: f["error_rkme"] for f in row["filled_by"]}
        assert own[imputed["source"]["version_id"]] == pytest.approx(row["error_rkme"], rel=1e-12)

    # The package fills them with the ridge learned on every labelled row, server and client alike.
    package = sub.package.open("rb").read()
    predicted = PackagePredictor.from_bytes(package).predict(Xg).astype(int)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
    from lwm_client.predict import Predictor

    np.testing.assert_array_equal(Predictor.from_bytes(package).predict(Xg).astype(int), predicted)
    recipe = json.loads(zipfile.ZipFile(io.BytesIO(package)).read("recipe.json"))
    for entry in recipe["members"]:  # each member's choice travels with its own fill
        assert entry["impute"]["ridge"] == [COLUMNS.index(c) for c in LACKING]
    full = torch.jit.load(io.BytesIO(market.arrays.models["upright"]))
    filled = task["X"].copy()
    for c in LACKING:
        fit = ridge_gcv(Xl[:, idx], Xl[:, COLUMNS.index(c)])  # independent refit on the labelled rows
        filled[:, COLUMNS.index(c)] = fit.predict(Xg)
    with torch.no_grad():
        expected = full(torch.from_numpy(filled.astype(np.float32))).argmax(1).numpy()
    assert np.mean(predicted == expected) >= 0.99  # float32 ties aside, the same rows were fed

    cost = sub.results["evaluate"]["imputation_cost"]
    assert cost["columns"] == LACKING and cost["methods"] == dict.fromkeys(LACKING, RIDGE_METHOD)
    assert cost["metric"] == "accuracy" and cost["rows"] == Xl.shape[0]
    upright = next(m for m in cost["members"] if m["version_id"] == market.versions["upright"].id)
    # The member sees the rows through the unit factor (rms_user / rms_developer, near 1 here: no call flips).
    assert upright["with_column"] == pytest.approx(_accuracy(full, Xl, yl), abs=1e-12)
    oof = Xl.copy()
    for c in LACKING:
        oof[:, COLUMNS.index(c)] = out_of_fold(Xl[:, idx], Xl[:, COLUMNS.index(c)], seed=0)
    assert upright["imputed"] == pytest.approx(_accuracy(full, oof, yl), abs=1e-12)
    # The ranking scored it on the same out-of-fold rows (not on the ridge that learned from them).
    ranked = next(
        c for c in sub.results["rank"]["candidates"] if c["version_id"] == market.versions["upright"].id
    )
    assert ranked["scores"]["accuracy"] == pytest.approx(upright["imputed"], abs=1e-12)
    assert upright["cost"] == pytest.approx(upright["with_column"] - upright["imputed"], abs=1e-12)


def test_too_few_labelled_rows_leave_the_columns_to_the_rkme(market, alice, report):
    n = MIN_RIDGE_ROWS - 4
    task = user_task({"upright": 1.0}, n=120, n_labelled=n, seed=3)
    keep = [c for c in COLUMNS if c not in LACKING]
    idx = [COLUMNS.index(c) for c in keep]
    sub = _run(
        alice,
        csv_bytes(task["X"][:, idx], columns=keep),
        csv_bytes(task["X_l"], task["y_l"], columns=COLUMNS),
        report,
    )
    assert sub.package, sub.results
    imputed = sub.results["spec"]["columns"]["imputed"]
    assert imputed["method"] == RKME_METHOD
    assert {r["method"] for r in imputed["per_column"]} == {RKME_METHOD}
    cost = sub.results["evaluate"]["imputation_cost"]
    assert cost["columns"] == LACKING and cost["methods"] == dict.fromkeys(LACKING, RKME_METHOD)
