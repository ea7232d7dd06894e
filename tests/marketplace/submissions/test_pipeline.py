"""The reuse pipeline in this process (real sandbox, real search index) on the constructed digits market.

Every ordering asserted here is computed from the run's own numbers, never hard-coded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs.assembly import Assembly
from tests.support.market import COLUMNS, csv_bytes, user_task
from workers.pipelines import reuse_methods
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_package import PackagePredictor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    # Jobs run in this process are never finished by a worker, so they would count as active.
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _submit(owner: Any, task: dict[str, Any], *, labelled: bool = False, requirements: dict[str, Any] | None = None,
            data: bytes | None = None) -> Submission:
    extra = {}
    if labelled:
        extra = {"labelled": ContentFile(csv_bytes(task["X_l"], task["y_l"]), name="l.csv"), "labelled_format": "csv"}
    content = data if data is not None else csv_bytes(task["X"])
    return submission_create(owner=owner, data_format="csv", data=ContentFile(content, name="d.csv"),
                             requirements=requirements or {}, **extra)


def _run(submission: Submission, report: Any) -> Submission:
    reuse_run(submission_id=str(submission.id), report=report)
    return Submission.objects.get(id=submission.id)


def _without_timing(results: dict[str, Any]) -> dict[str, Any]:
    return {stage: {k: v for k, v in r.items() if k != "seconds"} for stage, r in results.items()}


@pytest.mark.parametrize("scale", [None, "units"])
def test_a_single_source_task_ranks_its_learnware_first_without_a_mixture_at_any_scale(market, alice, report, scale):
    column_scale = np.geomspace(0.01, 1000.0, 64) if scale else None  # every column in other units
    task = user_task({"upside-down": 1.0}, n=300, seed=3, column_scale=column_scale)
    results = _run(_submit(alice, task), report).results
    singles = results["identify"]["singles"]
    assert singles[0]["version_id"] == market.versions["upside-down"].id
    assert singles[0]["mmd2"] < min(s["mmd2"] for s in singles[1:])
    assert results["identify"]["mixture"]["proposed"] is False
    assert results["assemble"]["chosen"] == "best_single"
    assert results["evaluate"]["labelled"] is False and "nothing was evaluated" in results["evaluate"]["statement"]


def test_a_task_mixing_two_domains_finds_both_with_their_weights_and_routes_rows_to_them(market, alice, report):
    task = user_task({"mirrored": 0.6, "transposed": 0.4}, n=400, seed=5)
    submission = _run(_submit(alice, task), report)
    mixture = submission.results["identify"]["mixture"]
    assert mixture["proposed"] is True
    weights = {c["version_id"]: c["weight"] for c in mixture["components"]}
    assert set(weights) == {market.versions["mirrored"].id, market.versions["transposed"].id}
    assert weights[market.versions["mirrored"].id] == pytest.approx(0.6, abs=0.1)
    assert submission.results["assemble"]["chosen"] == "rkme_job_selector"
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    accuracy = float(np.mean(predictor.predict(task["X"]).astype(int) == task["y"]))
    members = predictor._outputs(task["X"])  # each member alone on every row
    best_member = max(float(np.mean(out.argmax(axis=1) == task["y"])) for out in members)
    assert accuracy > best_member + 0.2, (accuracy, best_member)


def test_with_labels_every_method_is_evaluated_and_the_assembly_beats_both_baselines(market, alice, report):
    task = user_task({"inverted": 0.5, "upright": 0.5}, n=300, n_labelled=120, seed=11)
    submission = _run(_submit(alice, task, labelled=True), report)
    results = submission.results
    assert {r["method"] for r in results["assemble"]["methods"]} == set(reuse_methods.LABELLED_METHODS)
    ranked = results["rank"]["candidates"]
    assert {c["version_id"] for c in ranked[:2]} == {market.versions["inverted"].id, market.versions["upright"].id}
    assert all({"logme", "hscore", "knn", "accuracy", "mmd2"} <= set(c["scores"]) for c in ranked)
    evaluation = results["evaluate"]
    chosen = evaluation["chosen_score"]
    scratch = max(m["accuracy"] for m in evaluation["baselines"]["from_scratch"]["models"].values())
    single = evaluation["baselines"]["best_single"]["score"]
    assert chosen > scratch and chosen > single, evaluation["statement"]
    assert evaluation["verdict"] == {"beats_best_single": True, "beats_from_scratch": True, "beats_both": True}
    assert "It beats both baselines." in evaluation["statement"]
    # The package, run on its own, reproduces the evaluated score on the held-out rows.
    from workers.pipelines.reuse_context import ReuseContext

    test_rows = ReuseContext(submission).splits["test"]
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    package_accuracy = float(np.mean(predictor.predict(task["X_l"][test_rows]).astype(int) == task["y_l"][test_rows]))
    assert package_accuracy == pytest.approx(chosen, abs=1e-12)
    recipe = predictor.recipe
    assert [m["version_id"] for m in recipe["members"]] == [m["version_id"] for m in results["assemble"]["members"]]
    assert all(m["package_sha256"] == market.versions[m["name"].removeprefix("digits-")].artifact_sha256 for m in recipe["members"])
    assert predictor.manifest["license"] == "MIT" and predictor.manifest["artifact"]["format"] == "assembly"


def test_with_labels_the_method_is_chosen_by_cross_validation_on_the_training_rows_only(market, alice, report):
    from workers.pipelines.reuse_assemble import task_outputs, training_rows
    from workers.pipelines.reuse_context import ReuseContext
    from workers.pipelines.reuse_rank import context_members

    task = user_task({"upright": 0.5, "mirrored": 0.5}, n=400, n_labelled=80, seed=21)
    submission = _run(_submit(alice, task, labelled=True), report)
    assemble = submission.results["assemble"]
    ctx = ReuseContext(submission)
    ctx.results.update(submission.results)
    train, test = training_rows(ctx), ctx.splits["test"]
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 80
    assert assemble["split"] == {"train": train.size, "test": test.size}
    rows = {r["method"]: r for r in assemble["methods"]}
    best = max(r["validation"]["accuracy"] for r in rows.values())
    assert rows[assemble["chosen"]]["validation"]["accuracy"] == best
    assert all(r["validation"]["rows"] == train.size and r["validation"]["repeats"] == 3 for r in rows.values())
    # The RKME selector routes over the mixture's components only, as without labels.
    mixture = {c["version_id"] for c in submission.results["identify"]["mixture"]["components"]}
    weights = rows["rkme_job_selector"]["parameters"]["weights"]
    assert [w > 0 for w in weights] == [m["version_id"] in mixture for m in assemble["members"]]
    # It is zero-shot, so every fold scores the same fixed router: its CV accuracy is its
    # accuracy on the training rows, computed here directly.
    members, _ = context_members(ctx, [m["version_id"] for m in assemble["members"]])
    outputs = task_outputs(ctx, members, task["X_l"], assemble["classes"])
    router = Assembly.from_bytes(ctx.work_load(rows["rkme_job_selector"]["artifact"]["file"]))
    routed = reuse_methods.predict_method(router, task="classification", n_classes=10, outputs=[o[train] for o in outputs],
                                          Xs=ctx.transform(task["X_l"][train]))
    direct = float(np.mean(routed.argmax(axis=1) == task["y_l"][train]))
    assert rows["rkme_job_selector"]["validation"]["accuracy"] == pytest.approx(direct, abs=1e-12)


def test_every_fitted_method_round_trips_and_predicts_on_the_held_out_rows(market, alice, report):
    task = user_task({"mirrored": 0.5, "inverted": 0.5}, n=200, n_labelled=80, seed=2)
    submission = _run(_submit(alice, task, labelled=True), report)
    from workers.pipelines.reuse_context import ReuseContext

    ctx = ReuseContext(submission)
    for row in submission.results["assemble"]["methods"]:
        model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
        assert model.kind == row["method"]
        assert 0.0 <= submission.results["evaluate"]["methods"][row["method"]]["accuracy"] <= 1.0


def test_a_rerun_skips_finished_stages_and_recomputed_stages_give_the_same_results(market, alice, report, report_log):
    task = user_task({"upright": 0.5, "transposed": 0.5}, n=200, n_labelled=60, seed=4)
    first = _run(_submit(alice, task, labelled=True), report)
    Submission.objects.filter(id=first.id).update(results={k: v for k, v in first.results.items() if k in ("spec", "identify")})
    report_log.clear()
    second = _run(first, report)
    assert {entry[0] for entry in report_log} == {"rank", "assemble", "evaluate", "package"}
    assert _without_timing(second.results) == _without_timing(first.results)
    assert second.package_sha256 == first.package_sha256
    report_log.clear()
    reuse_run(submission_id=str(first.id), report=report)
    assert report_log == []  # nothing left to do


def test_a_private_learnware_never_serves_another_user(bob, alice, report):
    from tests.support.market import market_create

    market = market_create(owner=bob, private=("mirrored",))
    task = user_task({"mirrored": 1.0}, n=200, seed=8)
    ids = {s["version_id"] for s in _run(_submit(alice, task), report).results["identify"]["singles"]}
    assert market.versions["mirrored"].id not in ids
    assert _run(_submit(bob, task), report).results["identify"]["singles"][0]["version_id"] == market.versions["mirrored"].id


def _rejection(owner: Any, report: Any, **kwargs: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        reuse_run(submission_id=str(_submit(owner, **kwargs).id), report=report)
    return info.value


def test_bad_inputs_are_rejected_with_a_code_and_a_message_naming_the_problem(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=9)
    renamed = csv_bytes(task["X"], columns=[f"q{i}" for i in range(64)])
    nan = csv_bytes(task["X"]).replace(b"\n0.0,", b"\nnan,", 1)
    cases = {
        "submission:user:wrong-feature-space": dict(task=task, data=renamed),
        "submission:user:nan": dict(task=task, data=nan),
        "submission:user:empty-data": dict(task=task, data=(",".join(COLUMNS) + "\n").encode()),
        "submission:user:unknown-learnware": dict(task=task, requirements={"learnwares": [999999]}),
        "submission:user:labels-mismatch": dict(task={**task, "y_l": np.where(task["y_l"] > 4, "cat", "dog")}, labelled=True),
    }
    for code, kwargs in cases.items():
        error = _rejection(alice, report, **kwargs)
        assert error.code == code, (code, error.message)
        assert error.message.split(":")[0] in {"data", "labelled", "requirements.learnwares"}, error.message
    assert _run(_submit(alice, task), report).results["identify"]["singles"][0]["version_id"] == market.versions["upright"].id
