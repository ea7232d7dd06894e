"""Tables as users have them, through the live server and a real worker, with the Python client.

Two learnwares share five columns; the second was published with its columns in reverse order (its
model takes them so) and joins the same space. Users from the second one's domain submit their rows
with the columns permuted, with two extra columns, with two renamed (+ ``column_map``) and with two
missing: each finds that learnware, and the package predicts their rows as given — for the first
three exactly as the package of a user with the space's layout predicts the same rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

from tests.support import packages  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
COLUMNS = ["c1", "c2", "c3", "c4", "c5"]


@pytest.fixture
def lwm(live_server, alice, tmp_path, monkeypatch) -> Client:
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    client = Client(live_server.url, poll_interval=0.2)
    client.login("alice", "alice-pass-123")
    return client


def _rows(n: int, shift: float, seed: int) -> np.ndarray:
    return packages.table_data(COLUMNS, n, seed=seed, shift=shift)


def _package(lwm: Client, sub, tmp_path: Path, name: str) -> Predictor:
    assert sub.status == "succeeded", sub
    return Predictor.from_path(lwm.download_submission(sub.id, dest=tmp_path / name).path)


def test_permuted_extra_renamed_and_missing_columns_through_a_worker(
    lwm, celery_worker, s3_storage, tmp_path
):
    first = lwm.publish(
        packages.build_table_model_package(
            columns=COLUMNS, sample="csv", data=_rows(150, 0.0, 1), name="five-a", seed=1
        ),
        timeout=240,
    )
    backwards = COLUMNS[::-1]
    second = lwm.publish(
        packages.build_table_model_package(
            columns=backwards, sample="csv", data=_rows(150, 6.0, 2)[:, ::-1], name="five-b", seed=2
        ),
        timeout=240,
    )
    assert first.status == second.status == "published"
    spaces = [
        s
        for s in lwm.feature_spaces()
        if s.kind == "table" and sorted(s.schema.get("columns", [])) == COLUMNS
    ]
    assert len(spaces) == 1  # one space for the five columns, whatever their order

    X = _rows(120, 6.0, 10)
    frame = pd.DataFrame(X, columns=COLUMNS)
    base = lwm.submit(data=frame, name="layout", timeout=300)
    expected = _package(lwm, base, tmp_path, "base").predict_proba(X)

    rng = np.random.default_rng(0)
    permuted = frame[[COLUMNS[i] for i in rng.permutation(5)]]
    extra = permuted.assign(row_id=np.arange(120.0), note=rng.normal(size=120))[
        ["row_id", *permuted.columns, "note"]
    ]
    renamed = extra.rename(columns={"c2": "col_two", "c4": "fourth"})
    # Search by data from the client: the table is specced here, its columns matched by name.
    for given, column_map in ((extra, None), (renamed, {"col_two": "c2", "fourth": "c4"})):
        found = lwm.search_by_data(given, column_map=column_map, k=2)
        assert found.results[0].learnware_id == second.learnware

    cases = {
        "permuted": (permuted, None),
        "extra": (extra, None),
        "renamed": (renamed, {"col_two": "c2", "fourth": "c4"}),
    }
    for name, (given, column_map) in cases.items():
        sub = lwm.submit(data=given, name=name, column_map=column_map, timeout=300)
        spec = sub.results["spec"]["columns"]
        assert spec["given"] == list(given.columns) and spec["missing"] == [], name
        assert spec["extra"] == (["row_id", "note"] if name != "permuted" else []), name
        assert sub.results["identify"]["singles"][0]["learnware_id"] == second.learnware, name
        got = _package(lwm, sub, tmp_path, name).predict_proba(given.to_numpy())
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=name)

    missing = permuted.drop(columns=["c1", "c3"])
    sub = lwm.submit(data=missing, name="missing", timeout=300)
    spec = sub.results["spec"]["columns"]
    assert spec["missing"] == ["c3", "c1"] or sorted(spec["missing"]) == ["c1", "c3"]
    assert (
        sorted(spec["imputed"]["columns"]) == ["c1", "c3"]
        and spec["imputed"]["method"] == "rkme-kernel-regression"
    )
    assert sub.results["identify"]["singles"][0]["learnware_id"] == second.learnware
    predictor = _package(lwm, sub, tmp_path, "missing")
    out = predictor.predict_proba(missing.to_numpy())
    assert out.shape == expected.shape and np.isfinite(out).all()
    # These columns are independent, so the best fill is the learnware's mean of c1 and c3: the calls
    # agree with the full rows' where c1 and c3 do not decide them (most rows; chance would be ~0.5).
    assert np.mean(out.argmax(1) == expected.argmax(1)) >= 0.6

    # Labelled rows that hold the missing columns (named: a DataFrame travels with its columns): the
    # columns are learned from them (ridge), and the evaluation says what imputation cost per member.
    Xl = _rows(60, 6.0, 11)
    # In this user's world c1 and c3 follow their neighbours (a relation the learnwares' RKMEs, where the
    # columns are independent, do not know): the labelled rows teach it, so the ridge beats the RKME there.
    Xl[:, 0], Xl[:, 2] = Xl[:, 1] - 1.0, Xl[:, 3] - 1.0
    p1 = _package(lwm, base, tmp_path, "base-again").predict_proba(Xl)[:, 1]
    yl = np.where(p1 > np.median(p1), "class1", "class0")  # both classes, ranked by the learnware itself
    labelled = pd.DataFrame(Xl, columns=COLUMNS)[[COLUMNS[i] for i in rng.permutation(5)]]
    sub = lwm.submit(data=missing, labelled=(labelled, yl), name="missing-taught", timeout=300)
    imputed = sub.results["spec"]["columns"]["imputed"]
    assert imputed["method"] == "labelled-rows-ridge"
    assert {r["column"]: r["method"] for r in imputed["per_column"]} == {
        "c1": "labelled-rows-ridge",
        "c3": "labelled-rows-ridge",
    }
    assert all(r["error_ridge"] < r["error_rkme"] for r in imputed["per_column"])
    cost = sub.results["evaluate"]["imputation_cost"]
    assert sorted(cost["columns"]) == ["c1", "c3"] and cost["rows"] == 60 and cost["metric"] == "accuracy"
    assert cost["members"]  # every assembled member, with and without the true columns
    for m in cost["members"]:
        assert 0.0 <= m["imputed"] <= 1.0 and 0.0 <= m["with_column"] <= 1.0
        assert m["cost"] == pytest.approx(m["with_column"] - m["imputed"], abs=1e-12)
    taught = _package(lwm, sub, tmp_path, "missing-taught").predict_proba(missing.to_numpy())
    assert taught.shape == expected.shape and np.isfinite(taught).all()
