"""The pipeline, the packaged (server) predictor and the client predictor give each member the same
rows when the user lacks a column: its own RKME's fill (``specs.impute.member_rows``), or the labelled
rows' ridge where that predicted the column better than the member's own RKME (its ``ridge``); a recipe
built before per-member fills (no ``impute`` in its member entries) still predicts, with the plan's fill.

Two members output their input x2 (a TorchScript linear layer picking that column), so their outputs
are the rows they saw; A (the identified learnware) and B relate x2 to x0, x1 in opposite ways
(``tests/specs/test_impute_members.py``). Agreement is to float32 precision (atol 1e-5).
"""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from lwm_client.predict import Predictor

from specs.assembly import BestSingle
from specs.impute import impute_raw, member_fill
from specs.impute_ridge import RIDGE_METHOD, choose_column
from specs.recipe import RECIPE_FORMAT, RECIPE_VERSION, sha256_hex
from tests.specs.test_impute_members import A_COEF, B_COEF, developer, plan_for, rmse
from tests.support import packages
from workers.pipelines.reuse_members import Member, OutputCache
from workers.pipelines.reuse_package import PackagePredictor


def pick_x2() -> bytes:
    layer = torch.nn.Linear(3, 1).eval()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.0, 1.0]]))
        layer.bias.zero_()
    return packages.torchscript_bytes(layer, torch.zeros(2, 3))


def member(version_id: int, name: str, spec) -> Member:
    return Member(
        version_id, version_id, 1, name, "MIT", "0" * 64, "torchscript", "model.pt", None, spec.Z_, spec.beta_
    )


def package(plan: dict, fills: list[dict | None]) -> dict[str, bytes]:
    """An assembly package whose recipe picks member 1 (B); ``fills`` go in the member entries."""
    model = pick_x2()
    assembly = BestSingle(task="regression").fit([np.zeros(0), np.zeros(0)], scores=np.array([0.0, 1.0]))
    blob = assembly.to_bytes()
    files: dict[str, bytes] = {"assembly.lwa": blob}
    entries = []
    for i, (name, fill) in enumerate(zip(("A", "B"), fills, strict=True)):
        path = f"members/{i}/model.pt"
        files[path] = model
        entry = {"version_id": i + 1, "name": name, "classes": None, "input_shape": None}
        entry["artifact"] = {"path": path, "format": "torchscript", "sha256": sha256_hex(model)}
        entries.append(entry | ({"impute": fill} if fill is not None else {}))
    recipe = {
        "format": RECIPE_FORMAT,
        "version": RECIPE_VERSION,
        "method": "best_single",
        "task": "regression",
        "classes": [],
        "feature_space": "s",
        "transform": {"rms": [1.0] * 3, "mean": [0.0] * 3, "scale": [1.0] * 3, "unit_free": False},
        "assembly": {"path": "assembly.lwa", "sha256": sha256_hex(blob), "kind": "best_single"},
        "members": entries,
        "input": {"columns": ["x0", "x1"], "index": [0, 1, -1], "impute": plan},
    }
    files["recipe.json"] = json.dumps(recipe).encode()
    manifest = {"name": "a", "kind": "model", "modality": "table", "task": "regression"}
    files["learnware.yaml"] = yaml.safe_dump(manifest | {"input": {"columns": ["x0", "x1"]}}).encode()
    return files


def test_pipeline_server_and_client_give_each_member_its_own_fill():
    A, B = developer(A_COEF, 0), developer(B_COEF, 1)
    plan = plan_for(A) | {"columns": ["x2"]}
    X = np.random.default_rng(7).uniform(-1.5, 1.5, size=(60, 2))  # the user's rows: x0, x1 only
    members = [member(1, "A", A), member(2, "B", B)]
    cache = OutputCache(imputation=plan)
    filled = impute_raw(np.column_stack([X, np.full(60, np.nan)]), plan)  # as reuse_impute.fill_table
    pipeline = [cache.member_rows(m, filled)[:, 2] for m in members]
    assert rmse(pipeline[1], X @ B_COEF) <= 0.25 and rmse(pipeline[0], X @ A_COEF) <= 0.25

    files = package(plan, [cache.fill(m) for m in members])
    server = PackagePredictor(files)
    client = Predictor.from_bytes(packages.zip_bytes(files))
    for got, want in zip(server.member_outputs(server.rows(X)), pipeline, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(server.predict(X), pipeline[1], atol=1e-5)  # the recipe picks B
    np.testing.assert_allclose(client.predict(X), pipeline[1], atol=1e-5)


def test_a_recipe_built_before_per_member_fills_still_predicts_with_the_plans_fill():
    A, B = developer(A_COEF, 0), developer(B_COEF, 1)
    plan = plan_for(A) | {"columns": ["x2"]}
    X = np.random.default_rng(8).uniform(-1.5, 1.5, size=(40, 2))
    old = package(plan, [None, None])  # one plan for every member, as recipes were built before
    shared = impute_raw(np.column_stack([X, np.full(40, np.nan)]), plan)[:, 2]
    for predictor in (PackagePredictor(old), Predictor.from_bytes(packages.zip_bytes(old))):
        np.testing.assert_allclose(predictor.predict(X), shared, atol=1e-5)  # B sees A's fill
    assert member_fill(B.Z_, B.beta_, None, plan) is not None  # a new recipe would refill it


def test_pipeline_server_and_client_agree_on_each_members_choice_between_the_ridge_and_its_rkme():
    # The user's labelled rows follow A's relation (tests/specs/test_impute_choice.py): the ridge wins
    # for B (opposite relation) and loses for A; B is the identified learnware, so the plan's rows
    # hold the ridge, and A's rows are refilled from its own RKME.
    from tests.specs.test_impute_choice import developer as nonlinear
    from tests.specs.test_impute_choice import numpy_conditional_mean, user

    A, B = nonlinear(1.0, 0), nonlinear(-1.0, 1)
    plan = plan_for(B) | {"columns": ["x2"]}
    XL, yL = user(60, 3)
    own = {"1": member_fill(A.Z_, A.beta_, None, plan), "2": member_fill(B.Z_, B.beta_, None, plan)}
    row = choose_column(XL, yL, plan, 2, own)
    chosen = {k: [2] if m["method"] == RIDGE_METHOD else [] for k, m in row["members"].items()}
    assert chosen == {"1": [], "2": [2]}
    plan |= {
        "ridge": [row],
        "own_rkme": [{"version_id": int(k), "own": True, "ridge": v} for k, v in chosen.items()],
    }
    X = user(80, 11)[0]
    members = [member(1, "A", A), member(2, "B", B)]
    cache = OutputCache(imputation=plan)
    filled = impute_raw(np.column_stack([X, np.full(len(X), np.nan)]), plan)  # as reuse_impute.fill_table
    pipeline = [cache.member_rows(m, filled)[:, 2] for m in members]
    np.testing.assert_allclose(pipeline[0], numpy_conditional_mean(X, A.Z_, A.beta_), rtol=1e-8)
    np.testing.assert_allclose(pipeline[1], X @ np.asarray(row["coef"]) + row["intercept"], rtol=1e-10)
    fills = [cache.fill(m) for m in members]
    assert [f["ridge"] for f in fills] == [[], [2]]  # type: ignore[index]

    files = package(plan, fills)
    server = PackagePredictor(files)
    client = Predictor.from_bytes(packages.zip_bytes(files))
    for got, want in zip(server.member_outputs(server.rows(X)), pipeline, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(server.predict(X), pipeline[1], atol=1e-5)  # the recipe picks B
    np.testing.assert_allclose(client.predict(X), pipeline[1], atol=1e-5)
