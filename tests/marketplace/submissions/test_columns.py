"""Columns matched by name through the reuse pipeline (real sandbox, real index, digits market).

A user whose table holds the learnware's columns permuted, with two extra columns and two
renamed ones (+ ``column_map``) gets the same learnware and a package that predicts their rows
*as given* exactly as the package of a user with the space's layout predicts the same rows.
One learnware's model takes its columns reversed (its manifest says so): members are fed by name.
"""

from __future__ import annotations

import hashlib
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

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import Specification
from marketplace.search.store import rkme_arrays
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from tests.support.market import COLUMNS, _Softmax, csv_bytes, user_task
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_package import PackagePredictor

pytestmark = pytest.mark.django_db
REVERSED = COLUMNS[::-1]
CHEAP = {
    "methods": ["best_single", "weighted_ensemble"],
    "max_modules": 2,
}  # the columns are under test, not the methods


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _reverse_learnware(version: Any) -> None:
    """Rewrite a published version so that its model (and manifest) take the columns reversed:
    the same function of the same named columns, another position for each."""
    with version.package.open("rb") as fh:
        files = {i.filename: z for i, z in _entries(fh.read())}
    model = torch.jit.load(io.BytesIO(files["model.pt"]))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flip = torch.arange(len(COLUMNS) - 1, -1, -1)
    reversed_model = _Softmax(
        state["mean"][flip], state["scale"][flip], state["linear.weight"][:, flip], state["linear.bias"]
    )
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(reversed_model), buffer)
    files["model.pt"] = buffer.getvalue()
    manifest = {**version.manifest, "input": {"columns": REVERSED}}
    import yaml

    files["learnware.yaml"] = yaml.safe_dump(manifest).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in sorted(files):
            zf.writestr(name, files[name])
    content = out.getvalue()
    version.manifest, version.artifact_sha256, version.artifact_size = (
        manifest,
        hashlib.sha256(content).hexdigest(),
        len(content),
    )
    version.package.save("package.zip", ContentFile(content), save=False)
    version.save()


def _entries(raw: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return [(i, zf.read(i)) for i in zf.infolist() if not i.is_dir()]


def _run(
    owner: Any, data: bytes, labelled: bytes, report: Any, requirements: dict[str, Any] | None = None
) -> Submission:
    submission = submission_create(
        owner=owner,
        data_format="csv",
        data=ContentFile(data, name="d.csv"),
        labelled=ContentFile(labelled, name="l.csv"),
        labelled_format="csv",
        requirements={**CHEAP, **(requirements or {})},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    return Submission.objects.get(id=submission.id)


def test_permuted_extra_and_renamed_columns_predict_the_rows_as_given(market, alice, report):
    _reverse_learnware(market.versions["upright"])
    task = user_task({"upright": 1.0}, n=200, n_labelled=60, seed=5)
    X, Xl, yl = task["X"], task["X_l"], task["y_l"]
    base = _run(alice, csv_bytes(X), csv_bytes(Xl, yl), report)
    assert base.results["identify"]["singles"][0]["version_id"] == market.versions["upright"].id
    p0 = PackagePredictor.from_bytes(base.package.open("rb").read()).predict(X)
    # The reversed member is fed by name: its predictions are right (a positional feed gives ~chance).
    assert float(np.mean(p0.astype(int) == task["y"])) > 0.8

    rng = np.random.default_rng(1)
    perm = rng.permutation(len(COLUMNS))
    names = [COLUMNS[i] for i in perm]
    renamed = {names[0]: f"pixel_{names[0]}", names[1]: f"pixel_{names[1]}"}
    given = [renamed.get(c, c) for c in names] + ["row_id", "note"]
    extras = rng.normal(size=(X.shape[0], 2))
    Xg = np.hstack([X[:, perm], extras])
    lperm = rng.permutation(len(COLUMNS))  # the labelled file in yet another order, no extras
    lnames = [renamed.get(COLUMNS[i], COLUMNS[i]) for i in lperm]
    column_map = {v: k for k, v in renamed.items()}
    sub = _run(
        alice,
        csv_bytes(Xg, columns=given),
        csv_bytes(Xl[:, lperm], yl, columns=lnames),
        report,
        requirements={"column_map": column_map},
    )
    spec = sub.results["spec"]
    assert spec["feature_space"] == market.space.key
    assert spec["columns"]["extra"] == ["row_id", "note"] and spec["columns"]["missing"] == []
    assert spec["columns"]["column_map"] == column_map and spec["columns"]["given"] == given
    assert sub.results["identify"]["singles"][0]["version_id"] == market.versions["upright"].id
    package = sub.package.open("rb").read()
    server_side = PackagePredictor.from_bytes(package)
    assert yaml_columns(package) == given
    np.testing.assert_array_equal(server_side.predict(Xg), p0)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
    from lwm_client.predict import Predictor

    client_side = Predictor.from_bytes(package)  # the client's predictor reads the same recipe
    np.testing.assert_array_equal(client_side.predict(Xg), p0)
    with pytest.raises(ValueError, match="this package takes 66"):
        server_side.predict(X)


def yaml_columns(package: bytes) -> list[str]:
    import yaml

    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        assert json.loads(zf.read("recipe.json"))["input"]["columns"]
        return yaml.safe_load(zf.read("learnware.yaml"))["input"]["columns"]


@pytest.mark.parametrize(
    ("column_map", "code"),
    [
        ({"nope": "p0"}, "submission:user:column-map-unknown-column"),
        ({"pixel_a": "p1"}, "submission:user:column-map-duplicate-target"),
    ],
)
def test_a_bad_column_map_is_refused_by_name(market, alice, report, column_map, code):
    task = user_task({"upright": 1.0}, n=60, n_labelled=20, seed=2)
    columns = ["pixel_a", *COLUMNS[1:]]
    with pytest.raises(ValidationFailed) as err:
        _run(
            alice,
            csv_bytes(task["X"], columns=columns),
            csv_bytes(task["X_l"], task["y_l"], columns=columns),
            report,
            requirements={"column_map": column_map},
        )
    assert err.value.code == code


def test_missing_columns_are_named(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, n_labelled=20, seed=2)
    columns = ["pixel_a", *COLUMNS[1:]]
    with pytest.raises(ValidationFailed) as err:
        _run(
            alice,
            csv_bytes(task["X"], columns=columns),
            csv_bytes(task["X_l"], task["y_l"], columns=columns),
            report,
            requirements={"feature_space": market.space.key, "impute_missing": False},
        )
    assert err.value.code == "submission:user:wrong-feature-space"
    assert "'p0'" in err.value.message and "pixel_a" in err.value.message


def test_two_missing_columns_are_filled_from_the_learnwares_rkme_and_listed(market, alice, report):
    task = user_task({"upright": 1.0}, n=200, n_labelled=60, seed=7)
    lacking = ["p27", "p36"]  # two central, informative pixels
    keep = [c for c in COLUMNS if c not in lacking]
    idx = [COLUMNS.index(c) for c in keep]
    rng = np.random.default_rng(2)
    order = rng.permutation(len(keep))
    given = [keep[i] for i in order]
    Xg = task["X"][:, idx][:, order]
    sub = _run(
        alice, csv_bytes(Xg, columns=given), csv_bytes(task["X_l"][:, idx], task["y_l"], columns=keep), report
    )
    spec = sub.results["spec"]
    assert spec["feature_space"] == market.space.key
    assert spec["columns"]["missing"] == lacking and spec["columns"]["coverage"] == pytest.approx(
        62 / 64, abs=1e-4
    )
    imputed = spec["columns"]["imputed"]
    assert imputed["columns"] == lacking and imputed["method"] == "rkme-kernel-regression"
    assert (
        imputed["source"]["version_id"] == market.versions["upright"].id
    )  # the marginal match picks the user's domain
    assert imputed["source"]["learnware_id"] == market.versions["upright"].learnware_id  # linked by the page
    assert sub.results["identify"]["singles"][0]["version_id"] == market.versions["upright"].id
    # Each candidate member fills the columns from its own RKME (all of the space's have one).
    for row in imputed["per_column"]:
        filled_by = {f["version_id"]: f["rkme"] for f in row["filled_by"]}
        assert filled_by[market.versions["upright"].id] == "own" and set(filled_by.values()) == {"own"}
    package = sub.package.open("rb").read()
    recipe = json.loads(zipfile.ZipFile(io.BytesIO(package)).read("recipe.json"))
    for entry in recipe["members"]:  # each shipped member carries its own RKME's fill
        Z, beta = rkme_arrays(Specification.objects.get(version_id=entry["version_id"]).rkme)
        np.testing.assert_array_equal(np.asarray(entry["impute"]["Z"]), Z)
        np.testing.assert_array_equal(np.asarray(entry["impute"]["beta"]), beta)
    predicted = PackagePredictor.from_bytes(package).predict(Xg).astype(int)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
    from lwm_client.predict import Predictor

    np.testing.assert_array_equal(Predictor.from_bytes(package).predict(Xg).astype(int), predicted)
    # What imputation cost: the same learnware with every column, on the same rows.
    full = torch.jit.load(io.BytesIO(market.arrays.models["upright"]))
    with torch.no_grad():
        full_pred = full(torch.from_numpy(task["X"].astype(np.float32))).argmax(1).numpy()
    acc_full, acc_imputed = float(np.mean(full_pred == task["y"])), float(np.mean(predicted == task["y"]))
    assert acc_imputed >= acc_full - 0.05, (acc_imputed, acc_full)


def test_missing_columns_are_refused_when_imputation_is_off(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, n_labelled=20, seed=2)
    keep = COLUMNS[2:]
    idx = list(range(2, len(COLUMNS)))
    with pytest.raises(ValidationFailed) as err:
        _run(
            alice,
            csv_bytes(task["X"][:, idx], columns=keep),
            csv_bytes(task["X_l"][:, idx], task["y_l"], columns=keep),
            report,
            requirements={"impute_missing": False},
        )
    assert err.value.code == "submission:user:wrong-feature-space" and "p0" in err.value.message
