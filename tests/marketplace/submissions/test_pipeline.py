"""The reuse pipeline in this process (real sandbox, real search index) on the constructed digits market.

Every ordering asserted here is computed from the run's own numbers, never hard-coded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from scipy import stats

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs.assembly import Assembly
from specs.assembly.route_bandwidth import SOFT_ROUTE_GAMMA_FACTORS
from tests.support.market import COLUMNS, csv_bytes, user_task
from workers.pipelines import reuse_methods
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_package import PackagePredictor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    # Jobs run in this process are never finished by a worker, so they would count as active.
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _submit(
    owner: Any,
    task: dict[str, Any],
    *,
    labelled: bool = False,
    requirements: dict[str, Any] | None = None,
    data: bytes | None = None,
) -> Submission:
    extra = {}
    if labelled:
        extra = {
            "labelled": ContentFile(csv_bytes(task["X_l"], task["y_l"]), name="l.csv"),
            "labelled_format": "csv",
        }
    content = data if data is not None else csv_bytes(task["X"])
    return submission_create(
        owner=owner,
        data_format="csv",
        data=ContentFile(content, name="d.csv"),
        requirements=requirements or {},
        **extra,
    )


def _run(submission: Submission, report: Any) -> Submission:
    reuse_run(submission_id=str(submission.id), report=report)
    return Submission.objects.get(id=submission.id)


def _without_timing(results: dict[str, Any]) -> dict[str, Any]:
    return {stage: {k: v for k, v in r.items() if k != "seconds"} for stage, r in results.items()}


@pytest.mark.parametrize("scale", [None, "units"])
def test_a_single_source_task_ranks_its_learnware_first_without_a_mixture_at_any_scale(
    market, alice, report, scale
):
    column_scale = np.geomspace(0.01, 1000.0, 64) if scale else None  # every column in other units
    task = user_task({"upside-down": 1.0}, n=300, seed=3, column_scale=column_scale)
    results = _run(_submit(alice, task), report).results
    singles = results["identify"]["singles"]
    assert singles[0]["version_id"] == market.versions["upside-down"].id
    assert singles[0]["mmd2"] < min(s["mmd2"] for s in singles[1:])
    assert results["identify"]["mixture"]["proposed"] is False
    assert results["assemble"]["chosen"] == "best_single"
    assert (
        results["evaluate"]["labelled"] is False
        and "nothing was evaluated" in results["evaluate"]["statement"]
    )


def test_a_task_mixing_two_domains_finds_both_with_their_weights_and_routes_rows_to_them(
    market, alice, report
):
    task = user_task({"mirrored": 0.6, "transposed": 0.4}, n=400, seed=5)
    submission = _run(_submit(alice, task), report)
    mixture = submission.results["identify"]["mixture"]
    assert mixture["proposed"] is True
    weights = {c["version_id"]: c["weight"] for c in mixture["components"]}
    assert set(weights) == {market.versions["mirrored"].id, market.versions["transposed"].id}
    assert weights[market.versions["mirrored"].id] == pytest.approx(0.6, abs=0.1)
    assert submission.results["assemble"]["chosen"] == "rkme_soft_selector"
    # The label-free choice's evidence: the rows' routes agree with the mixture weights (total
    # variation recomputed here from the recorded shares and identification's weights).
    free = submission.results["assemble"]["label_free"]
    assert free["method"] == "rkme_soft_selector" and sum(free["route_shares"]) == pytest.approx(
        1.0, abs=1e-3
    )
    ordered = [weights[m["version_id"]] for m in submission.results["assemble"]["members"]]
    tv = 0.5 * sum(abs(s - w / sum(ordered)) for s, w in zip(free["route_shares"], ordered, strict=True))
    assert free["disagreement"] == pytest.approx(tv, abs=1e-3) and tv <= free["max_disagreement"]
    assert "agree with the mixture weights" in submission.results["assemble"]["reason"]
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    accuracy = float(np.mean(predictor.predict(task["X"]).astype(int) == task["y"]))
    members = predictor._outputs(task["X"])  # each member alone on every row
    best_member = max(float(np.mean(out.argmax(axis=1) == task["y"])) for out in members)
    assert accuracy > best_member + 0.2, (accuracy, best_member)


def _corrected_interval(values: np.ndarray, k: int) -> tuple[float, float, float]:
    """Mean and 95 % t interval under the Nadeau-Bengio corrected variance, written out here."""
    J = values.shape[0]
    se = np.sqrt((1.0 / J + 1.0 / (k - 1)) * values.var(ddof=1))
    h = stats.t.ppf(0.975, J - 1) * se
    return float(values.mean()), float(values.mean() - h), float(values.mean() + h)


def test_with_labels_every_method_is_scored_on_shared_folds_and_the_winner_beats_both_baselines(
    market, alice, report
):
    task = user_task({"inverted": 0.5, "upright": 0.5}, n=300, n_labelled=120, seed=11)
    submission = _run(_submit(alice, task, labelled=True), report)
    results = submission.results
    assert results["spec"]["n_rows"] == 300 + 120  # identification specs the labelled rows too
    rms = np.sqrt(np.mean(np.vstack([task["X"], task["X_l"]]) ** 2, axis=0))
    assert results["spec"]["unit_rms"] == pytest.approx(np.where(rms > 0, rms, 1.0), rel=1e-12)
    assert {r["method"] for r in results["assemble"]["methods"]} == {
        "label_free",
        *reuse_methods.LABELLED_METHODS,
    }
    ranked = results["rank"]["candidates"]
    assert {c["version_id"] for c in ranked[:2]} == {
        market.versions["inverted"].id,
        market.versions["upright"].id,
    }
    assert all({"logme", "hscore", "knn", "accuracy", "mmd2"} <= set(c["scores"]) for c in ranked)
    evaluation = results["evaluate"]
    k, repeats = evaluation["folds"]["k"], evaluation["folds"]["repeats"]
    assert evaluation["folds"]["rows"] == 120 and k == 5
    # Every interval and verdict, recomputed here from the stored per-fold scores.
    for name, folds in evaluation["per_fold"].items():
        mean, low, high = _corrected_interval(np.asarray(folds), k)
        assert evaluation["scores"][name]["n"] == k * repeats
        assert evaluation["scores"][name]["mean"] == pytest.approx(mean, abs=1e-9)
        assert evaluation["scores"][name]["ci95"] == pytest.approx([low, high], abs=1e-9)
    winner = evaluation["chosen"]
    for baseline in ("best_single", "from_scratch"):
        d = np.asarray(evaluation["per_fold"][winner]) - np.asarray(evaluation["per_fold"][baseline])
        _, low, high = _corrected_interval(d, k)
        expected = "better" if low > 0 else "worse" if high < 0 else "no_difference"
        assert evaluation["verdicts"][baseline] == expected
    # On this two-domain user the assembly is measurably better than either baseline.
    assert evaluation["winner"]["kind"] == "assembly", evaluation["statement"]
    assert evaluation["verdicts"] == {"best_single": "better", "from_scratch": "better"}, evaluation[
        "statement"
    ]
    assert evaluation["verdict"] == {
        "beats_best_single": True,
        "beats_from_scratch": True,
        "beats_both": True,
    }
    assert "better than the best single learnware" in evaluation["statement"]
    # Every stored result reads back into its typed class and serialises to the same JSON.
    from workers.pipelines import reuse_results as typed

    readers = {
        "spec": typed.SpecResult.from_dict,
        "identify": typed.IdentifyResult.from_dict,
        "rank": typed.rank_from_dict,
        "assemble": typed.assemble_from_dict,
        "evaluate": typed.EvaluateLabelled.from_dict,
        "package": typed.PackageResult.from_dict,
    }
    for stage, read in readers.items():
        stored = {k: v for k, v in results[stage].items() if k not in ("key", "seconds")}
        assert read(results[stage]).to_dict() == stored, stage
    # The package, run on its own, reproduces the refitted winner on the labelled rows.
    from workers.pipelines.reuse_context import ReuseContext
    from workers.pipelines.reuse_shared import context_members, task_outputs

    ctx = ReuseContext(submission)
    ctx.results.update(results)
    row = next(r for r in results["assemble"]["methods"] if r["method"] == winner)
    members, _ = context_members(ctx, [m["version_id"] for m in results["assemble"]["members"]])
    outputs = task_outputs(ctx, members, task["X_l"], results["assemble"]["classes"])
    model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
    expected = reuse_methods.predict_method(
        model, task="classification", n_classes=10, outputs=outputs, Xs=ctx.transform(task["X_l"])
    ).argmax(axis=1)
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    assert np.array_equal(predictor.predict(task["X_l"]).astype(int), expected)
    recipe = predictor.recipe
    assert recipe["evaluation"]["winner"] == evaluation["winner"]
    assert all(
        m["package_sha256"] == market.versions[m["name"].removeprefix("digits-")].artifact_sha256
        for m in recipe["members"]
    )
    assert predictor.manifest["license"] == "MIT" and predictor.manifest["artifact"]["format"] == "assembly"


def test_a_labelled_method_replaces_the_label_free_choice_only_when_its_gain_exceeds_its_standard_error(
    market, alice, report
):
    from workers.pipelines.reuse_context import ReuseContext

    task = user_task({"upright": 0.5, "mirrored": 0.5}, n=400, n_labelled=80, seed=21)
    submission = _run(_submit(alice, task, labelled=True), report)
    assemble = submission.results["assemble"]
    rows = {r["method"]: r for r in assemble["methods"] if not r.get("skipped")}
    base = np.asarray(rows["label_free"]["validation"]["per_fold"])
    k = rows["label_free"]["validation"]["folds"]
    eligible = {}
    for name, r in rows.items():
        d = np.asarray(r["validation"]["per_fold"]) - base
        se = np.sqrt((1 / d.size + 1 / (k - 1)) * d.var(ddof=1)) if name != "label_free" else np.inf
        if d.mean() > se:
            eligible[name] = d.mean()
    assert assemble["chosen"] == (max(eligible, key=eligible.get) if eligible else "label_free")
    assert all(r["validation"]["rows"] == 80 for r in rows.values())
    # The label-free choice is the router over the found mixture, a fixed model: its fold scores are
    # its accuracy on each test fold, computed here directly from its predictions on every row.
    assert submission.results["identify"]["mixture"]["proposed"] is True
    assert rows["label_free"]["assembly_kind"] == "rkme_soft_selector"
    ctx = ReuseContext(submission)
    ctx.results.update(submission.results)
    from workers.pipelines.reuse_shared import context_members, cv_folds, labelled_codes, task_outputs

    members, _ = context_members(ctx, [m["version_id"] for m in assemble["members"]])
    outputs = task_outputs(ctx, members, task["X_l"], assemble["classes"])
    router = Assembly.from_bytes(ctx.work_load(rows["label_free"]["artifact"]["file"]))
    hits = (
        reuse_methods.predict_method(
            router, task="classification", n_classes=10, outputs=outputs, Xs=ctx.transform(task["X_l"])
        ).argmax(axis=1)
        == task["y_l"]
    )
    y = labelled_codes(ctx, assemble["classes"])
    direct = [float(np.mean(hits[test])) for _, test in cv_folds(ctx, y).splits]
    assert rows["label_free"]["validation"]["per_fold"] == pytest.approx(direct, abs=1e-6)
    mixture = {c["version_id"] for c in submission.results["identify"]["mixture"]["components"]}
    weights = rows["rkme_job_selector"]["parameters"]["weights"]
    assert [w > 0 for w in weights] == [m["version_id"] in mixture for m in assemble["members"]]
    # The reported routing kernel is the delivered router's, as a multiple of the space's gamma.
    factor = rows["label_free"]["parameters"]["gamma_factor"]
    assert factor in SOFT_ROUTE_GAMMA_FACTORS and router.gamma_ / ctx.space.gamma == pytest.approx(
        factor, rel=1e-5
    )


def test_every_fitted_method_round_trips_and_predicts_on_the_held_out_rows(market, alice, report):
    task = user_task({"mirrored": 0.5, "inverted": 0.5}, n=200, n_labelled=80, seed=2)
    submission = _run(_submit(alice, task, labelled=True), report)
    from workers.pipelines.reuse_context import ReuseContext

    ctx = ReuseContext(submission)
    for row in submission.results["assemble"]["methods"]:
        if not row.get("skipped"):
            model = Assembly.from_bytes(ctx.work_load(row["artifact"]["file"]))
            assert model.kind == row["assembly_kind"]
            assert 0.0 <= submission.results["evaluate"]["methods"][row["method"]]["accuracy"] <= 1.0


def test_a_rerun_skips_finished_stages_and_recomputed_stages_give_the_same_results(
    market, alice, report, report_log
):
    task = user_task({"upright": 0.5, "transposed": 0.5}, n=200, n_labelled=60, seed=4)
    first = _run(_submit(alice, task, labelled=True), report)
    Submission.objects.filter(id=first.id).update(
        results={k: v for k, v in first.results.items() if k in ("spec", "identify")}
    )
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
    assert (
        _run(_submit(bob, task), report).results["identify"]["singles"][0]["version_id"]
        == market.versions["mirrored"].id
    )


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
        "submission:user:labels-mismatch": dict(
            task={**task, "y_l": np.where(task["y_l"] > 4, "cat", "dog")}, labelled=True
        ),
    }
    for code, kwargs in cases.items():
        error = _rejection(alice, report, **kwargs)
        assert error.code == code, (code, error.message)
        assert error.message.split(":")[0] in {"data", "labelled", "requirements.learnwares"}, error.message
    assert (
        _run(_submit(alice, task), report).results["identify"]["singles"][0]["version_id"]
        == market.versions["upright"].id
    )


def _picked(task: dict[str, Any], counts: dict[int, int]) -> dict[str, Any]:
    """The task with a labelled sample of ``counts`` rows per class, taken from its labelled rows."""
    rows = np.concatenate([np.flatnonzero(task["y_l"] == c)[:n] for c, n in counts.items()])
    return {**task, "X_l": task["X_l"][rows], "y_l": task["y_l"][rows]}


def test_a_rare_class_never_crashes_methods_that_cannot_fit_are_skipped_with_a_reason(market, alice, report):
    # One positive among 50: most training folds hold a single class.
    task = _picked(user_task({"mirrored": 1.0}, n=200, n_labelled=400, seed=13), {3: 49, 5: 1})
    submission = _run(_submit(alice, task, labelled=True), report)
    assert submission.package_sha256
    evaluation = submission.results["evaluate"]
    skipped = evaluation["skipped"]
    assert all("cannot be fitted" in why for why in skipped.values())
    assert set(evaluation["verdicts"]) == {"best_single", "from_scratch"}
    assert all(v in ("better", "no_difference", "worse") for v in evaluation["verdicts"].values())
    # Whatever won, the package predicts over every class the members know, not only the two labelled.
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    assert predictor.recipe["classes"] == [str(c) for c in range(10)]
    assert predictor.predict_proba(task["X"]).shape == (200, 10)


def test_a_single_class_sample_gets_the_label_free_package_measured_on_its_rows(market, alice, report):
    task = _picked(user_task({"transposed": 1.0}, n=200, n_labelled=400, seed=17), {7: 30})
    submission = _run(_submit(alice, task, labelled=True), report)
    results = submission.results
    assert results["spec"]["labelled"]["single_class"] is True
    assert results["assemble"]["labels_used"] is False and results["assemble"]["chosen"] == "best_single"
    evaluation = results["evaluate"]
    assert evaluation["winner"]["kind"] == "best_single" and evaluation["verdicts"] == {
        "best_single": None,
        "from_scratch": None,
    }
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    right = int(np.sum(predictor.predict(task["X_l"]).astype(int) == 7))
    score = evaluation["scores"]["best_single"]
    assert score["mean"] == pytest.approx(right / 30, abs=1e-12) and score["n"] == 30
    assert score["ci95"][0] <= score["mean"] <= score["ci95"][1]
    assert "single class" in evaluation["statement"]
    assert predictor.recipe["members"][0]["version_id"] == market.versions["transposed"].id
    assert len(predictor.recipe["members"]) == 1  # members of weight 0 are not shipped


@pytest.mark.parametrize("labelled", [False, True])
def test_a_user_in_other_units_gets_the_same_predictions_as_in_the_developers_units(
    market, alice, report, labelled
):
    column_scale = np.geomspace(0.1, 10.0, 64)  # every column in other units (x0.1 .. x10)
    raw = user_task({"inverted": 0.5, "mirrored": 0.5}, n=200, n_labelled=50 if labelled else 0, seed=23)
    other = user_task(
        {"inverted": 0.5, "mirrored": 0.5},
        n=200,
        n_labelled=50 if labelled else 0,
        seed=23,
        column_scale=column_scale,
    )
    packages, contents = {}, {}
    for name, task in (("raw", raw), ("other", other)):
        submission = _run(_submit(alice, task, labelled=labelled), report)
        contents[name] = submission.package.open("rb").read()
        packages[name] = PackagePredictor.from_bytes(contents[name])
        units = submission.results["assemble"]["units"]
        assert all(u["known"] for u in units)
        assert all(u["differ"] == (name == "other") for u in units), units
    accuracy = {
        name: float(np.mean(p.predict(t["X"]).astype(int) == t["y"]))
        for (name, p), t in zip(packages.items(), (raw, other), strict=True)
    }
    assert accuracy["other"] == pytest.approx(accuracy["raw"], abs=0.01), accuracy
    assert accuracy["raw"] > 0.85, accuracy
    # The client's predictor applies the same per-member map.
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
    from lwm_client.predict import Predictor

    client = Predictor.from_bytes(contents["other"])
    assert np.array_equal(client.predict(other["X"]), packages["other"].predict(other["X"]))


def test_when_no_learnware_helps_the_model_trained_from_scratch_is_delivered_as_a_package(bob, alice, report):
    from tests.support.market import market_create

    market_create(owner=bob, domains=("upright",))
    task = user_task({"transposed": 1.0}, n=200, n_labelled=150, seed=29)
    submission = _run(_submit(alice, task, labelled=True), report)
    evaluation = submission.results["evaluate"]
    assert evaluation["winner"]["kind"] == "from_scratch", evaluation["statement"]
    assert evaluation["verdicts"]["best_single"] == "better"
    predictor = PackagePredictor.from_bytes(submission.package.open("rb").read())
    assert (
        predictor.recipe["members"][0]["origin"] == "from_scratch"
        and predictor.manifest["license"] == "LicenseRef-Proprietary"
    )
    # The package predicts as the from-scratch model refitted on every labelled row (sklearn, here).
    from workers.pipelines.reuse_scratch import scratch_fit, scratch_models

    model = scratch_fit(
        scratch_models("classification", 0)[evaluation["winner"]["method"]],
        task["X_l"],
        task["y_l"],
        "classification",
    )
    expected = model.predict_proba(task["X"])
    assert np.abs(predictor.predict_proba(task["X"]) - expected).max() < 1e-4
    accuracy = float(np.mean(predictor.predict(task["X"]).astype(int) == task["y"]))
    assert accuracy > 0.8


def test_an_uploaded_rkme_with_unit_rms_gets_a_package_that_converts_the_users_units(market, alice, report):
    from marketplace.submissions.services import submission_create as create
    from specs import rkme_fit, rkme_to_json

    column_scale = np.geomspace(0.1, 10.0, 64)
    task = user_task({"upside-down": 1.0}, n=200, seed=31, column_scale=column_scale)
    rms = np.sqrt(np.mean(task["X"] ** 2, axis=0))
    rms = np.where(rms > 0, rms, 1.0)
    Z = market.arrays.standardizer.transform(task["X"])  # what the client's spec_table computes
    doc = json.loads(rkme_to_json(rkme_fit(Z, 100, 1.0 / 128, random_state=0))) | {"unit_rms": rms.tolist()}
    submission = create(
        owner=alice,
        data_format="rkme",
        rkme_json=json.dumps(doc),
        requirements={"feature_space": market.space.key},
    )
    results = _run(submission, report).results
    assert results["spec"]["unit_rms_known"] is True and results["spec"]["unit_rms"] == pytest.approx(
        rms.tolist()
    )
    predictor = PackagePredictor.from_bytes(
        Submission.objects.get(id=submission.id).package.open("rb").read()
    )
    assert "input_map" in predictor.recipe["members"][0]
    assert float(np.mean(predictor.predict(task["X"]).astype(int) == task["y"])) > 0.9
