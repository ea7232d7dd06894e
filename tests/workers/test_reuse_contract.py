"""The reuse pipeline's typed stage contract: stages, result classes and ``FitInputs``.

That the typed stages store the very JSON (and package bytes) the untyped ones did was checked
once, before/after, on the in-process and integration submissions (docs/notes of issue 19); here
the contract itself is pinned so it cannot drift: every stage is a ``Stage``, every result class
serialises its fields as the stored keys in order and reads them back, and a fold of
``FitInputs`` is the fold of every array in it.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from marketplace.submissions.choices import STAGES
from workers.pipelines import model_selection_results, reuse_methods, reuse_results
from workers.pipelines.reuse import ADAPTER_STAGES, MODEL_STAGES
from workers.pipelines.reuse_methods import FitInputs

PIPELINES = Path(__file__).resolve().parents[2] / "workers" / "pipelines"
STAGE_MODULES = (
    "reuse_spec",
    "reuse_identify",
    "reuse_rank",
    "reuse_assemble",
    "reuse_evaluate",
    "reuse_package",
)


def test_every_stage_is_keyed_by_its_results_entry_in_pipeline_order() -> None:
    assert list(MODEL_STAGES) == list(STAGES)
    assert all(stage.key == key for key, stage in {**MODEL_STAGES, **ADAPTER_STAGES}.items())
    assert set(ADAPTER_STAGES) <= set(STAGES)


def _result_classes() -> list[type[reuse_results.StageResult]]:
    """Every result class of the reuse pipeline and of model selection (stored the same way)."""
    return [
        c
        for module in (reuse_results, model_selection_results)
        for c in vars(module).values()
        if isinstance(c, type)
        and issubclass(c, reuse_results.StageResult)
        and c is not reuse_results.StageResult
        and c.__module__ == module.__name__
    ]


@pytest.mark.parametrize("cls", _result_classes(), ids=lambda c: c.__name__)
def test_a_result_serialises_its_fields_in_order_and_reads_them_back(
    cls: type[reuse_results.StageResult],
) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    values = {name: f"value-{i}" for i, name in enumerate(names)}
    result = cls(**values)
    stored = result.to_dict()
    assert list(stored) == names and stored == values
    # The runner adds the input key and the seconds; reading back ignores them.
    assert cls.from_dict({**stored, "key": "k", "seconds": 1.0}) == result
    assert cls.stage in STAGES


def test_stored_shapes_are_told_apart_by_their_keys() -> None:
    skipped = {"skipped": True, "candidates": [], "meaning": {}, "explanation": "", "key": "k"}
    assert isinstance(reuse_results.rank_from_dict(skipped), reuse_results.RankSkipped)
    scored = {
        "skipped": False,
        "classes": ["a"],
        "candidates": [],
        "weights": {},
        "meaning": {},
        "explanation": "",
    }
    assert isinstance(reuse_results.rank_from_dict(scored), reuse_results.RankScored)
    assert isinstance(
        reuse_results.rank_from_dict({**scored, "kind": "adapter"}), reuse_results.AdapterRankResult
    )
    with pytest.raises(KeyError):  # a stored result missing a key of its class is refused, not half-read
        reuse_results.rank_from_dict({"skipped": False, "candidates": []})


def test_no_stage_module_imports_a_private_name_or_another_stage() -> None:
    for path in sorted(PIPELINES.glob("reuse*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workers.pipelines"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"
                if path.stem in STAGE_MODULES:
                    assert node.module.rsplit(".", 1)[-1] not in STAGE_MODULES, (
                        f"{path.name} imports stage {node.module}"
                    )


def test_a_fold_of_fit_inputs_takes_those_rows_of_every_array_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(0)
    outputs, Xs, y = [rng.random((10, 3)), rng.random((10, 3))], rng.random((10, 4)), rng.integers(0, 3, 10)
    base = FitInputs(
        task="classification",
        n_classes=3,
        rkmes=[(Xs[:2], np.ones(2) / 2)] * 2,
        gamma=0.5,
        prior=np.array([0.5, 0.5]),
        seed=0,
    )
    assert base.outputs == [] and base.y is None  # zero-shot: no rows
    labelled = base.labelled(outputs, Xs, y)
    index = np.array([1, 4, 7])
    fold = labelled.rows(index)
    assert fold.Xs is not None and fold.y is not None
    np.testing.assert_array_equal(fold.Xs, Xs[index])
    np.testing.assert_array_equal(fold.y, y[index])
    assert all(np.array_equal(a, o[index]) for a, o in zip(fold.outputs, outputs, strict=True))
    assert fold.prior is base.prior and fold.rkmes is base.rkmes and fold.gamma == base.gamma


def test_zero_shot_methods_fit_without_rows_and_labelled_ones_refuse() -> None:
    rng = np.random.default_rng(1)
    rkmes = [(rng.random((5, 2)), np.full(5, 0.2)), (rng.random((5, 2)) + 3, np.full(5, 0.2))]
    inputs = FitInputs(
        task="classification", n_classes=2, rkmes=rkmes, gamma=1.0, prior=np.array([0.3, 0.7]), seed=0
    )
    assert reuse_methods.fit_method("weighted_ensemble", inputs).kind == "weighted_ensemble"
    assert reuse_methods.fit_method("rkme_job_selector", inputs).kind == "rkme_job_selector"
    with pytest.raises(ValueError, match="needs a labelled sample"):
        reuse_methods.fit_method("stitching_head", inputs)
