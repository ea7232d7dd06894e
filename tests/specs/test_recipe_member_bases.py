"""A recipe member with its own ``base`` (a text head pinned to another base version than ``recipe.base``)
takes the inputs embedded by that version (``base_rows``), refused by name without them; a member whose
``base`` is ``recipe.base`` takes the recipe's rows; version-1 recipes (before member bases) still read.

The member is a TorchScript layer returning its input's column 0, so its output is the rows it was fed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from specs.assembly import BestSingle
from specs.recipe import RecipeError, RecipeMemberBaseError, RecipePredictor, sha256_hex
from tests.support import packages
from workers.pipelines.reuse_package import _member_model

RUN, OWN = "a" * 64, "b" * 64


def first_column() -> bytes:
    layer = torch.nn.Linear(3, 1).eval()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        layer.bias.zero_()
    return packages.torchscript_bytes(layer, torch.zeros(2, 3))


def files(version: int, member_base: str | None) -> dict[str, bytes]:
    model = first_column()
    blob = BestSingle(task="regression").fit([np.zeros(0)], scores=np.ones(1)).to_bytes()
    entry = {
        "version_id": 1,
        "name": "head",
        "classes": None,
        "input_shape": None,
        "artifact": {"path": "members/0/model.pt", "format": "torchscript", "sha256": sha256_hex(model)},
        **({"base": {"key": "k", "version": 1, "package_sha256": member_base}} if member_base else {}),
    }
    recipe = {
        "format": "lwm-assembly-recipe",
        "version": version,
        "method": "best_single",
        "task": "regression",
        "classes": [],
        "feature_space": "text-k",
        "transform": {"rms": [1.0] * 3, "mean": [0.0] * 3, "scale": [1.0] * 3, "unit_free": False},
        "assembly": {"path": "assembly.lwa", "sha256": sha256_hex(blob), "kind": "best_single"},
        "members": [entry],
        "base": {"key": "k", "version": 2, "package_sha256": RUN},
    }
    manifest = {"name": "a", "kind": "model", "modality": "text", "task": "regression"}
    return {
        "assembly.lwa": blob,
        "members/0/model.pt": model,
        "recipe.json": json.dumps(recipe).encode(),
        "learnware.yaml": yaml.safe_dump(manifest).encode(),
    }


def test_a_member_on_its_own_base_takes_that_versions_rows():
    rng = np.random.default_rng(0)
    X, own = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    predictor = RecipePredictor(files(2, OWN), _member_model)
    assert list(predictor.member_bases()) == [OWN]
    np.testing.assert_allclose(predictor.predict_proba(X, {OWN: own}), own[:, 0], atol=1e-6)
    with pytest.raises(RecipeMemberBaseError) as err:
        predictor.predict_proba(X)
    assert err.value.code == "predict:user:member-base-rows"


def test_a_member_on_the_recipes_base_and_a_version_1_recipe_take_the_recipes_rows():
    X = np.random.default_rng(1).normal(size=(4, 3))
    for version, member_base in ((2, RUN), (1, None)):
        predictor = RecipePredictor(files(version, member_base), _member_model)
        assert predictor.member_bases() == {}
        np.testing.assert_allclose(predictor.predict_proba(X), X[:, 0], atol=1e-6)
    with pytest.raises(RecipeError):
        RecipePredictor(files(3, None), _member_model)


def test_the_recipe_version_is_2_only_with_a_member_base_and_a_version_1_member_base_is_refused():
    from specs.recipe import RECIPE_VERSION, member_base, recipe_version

    plain, pinned = {"name": "a"}, {"name": "b", "base": {"key": "k", "package_sha256": OWN}}
    assert recipe_version([plain, plain]) == 1 and recipe_version([plain, pinned]) == RECIPE_VERSION == 2
    recipe = json.loads(files(1, OWN)["recipe.json"])
    with pytest.raises(RecipeError, match="version-1"):
        member_base(recipe["members"][0], recipe)
    assert member_base(recipe["members"][0], {**recipe, "version": 2}) == recipe["members"][0]["base"]
