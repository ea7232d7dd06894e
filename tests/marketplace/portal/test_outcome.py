"""The results page's recommendation, from the reuse contract (winner, scores with intervals, verdicts)
or, for older reports, from the highest held-out score."""

from __future__ import annotations

import copy

import pytest
from django.core.files.base import ContentFile

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.portal.outcome import task_outcome
from marketplace.submissions.models import Submission
from tests.marketplace.portal.factories import make_learnware
from tests.marketplace.portal.test_submissions import RESULTS

pytestmark = pytest.mark.django_db


def contract_report(version_id: int) -> dict:
    evaluation = copy.deepcopy(RESULTS["evaluate"])
    evaluation["baselines"]["best_single"].update(version_id=version_id, learnware_id=0, version=1)
    evaluation.update(
        winner={"kind": "best_single", "method": "best_single", "name": "lw-a"},
        scores={
            "weighted_ensemble": {"mean": 0.82, "ci95": [0.71, 0.91], "n": 60},
            "lw-a": {"mean": 0.84, "ci95": [0.74, 0.93], "n": 60},
            "mlp": {"mean": 0.6, "ci95": [0.48, 0.71], "n": 60},
        },
        verdicts={"best_single": "no_difference", "from_scratch": "better"},
    )
    return evaluation


def test_the_contract_winner_is_downloaded_and_each_score_shows_its_interval(web_for, alice):
    best = make_learnware(alice, name="lw-a")
    results = {**RESULTS, "evaluate": contract_report(best.id)}
    job = Job.objects.create(
        kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package", progress=100
    )
    submission = Submission.objects.create(owner=alice, job=job, data_format="csv", results=results, name="t")
    submission.package.save("package.zip", ContentFile(b"assembly"), save=True)
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    assert 'data-winner-kind="best_single"' in page
    download = f"/api/v1/learnwares/{best.learnware_id}/versions/1/download"
    assert (
        f'href="{download}" download data-primary-action' in page and "Download the winner: lw-a v1" in page
    )
    assert "95 % interval 0.74 – 0.93, n = 60" in page and "0.71 – 0.91" in page
    assert "within noise: the held-out rows cannot tell them apart" in page
    assert "better, beyond sampling noise" in page


def test_an_older_report_recommends_the_highest_held_out_score():
    evaluation = copy.deepcopy(RESULTS["evaluate"])
    evaluation["methods"]["weighted_ensemble"]["accuracy"] = 0.7  # now below the best single's 0.8
    outcome = task_outcome(evaluation)
    assert outcome is not None and outcome.kind == "best_single" and not outcome.intervals
    assert [(r.name, r.mean, r.winner) for r in outcome.scores] == [
        ("weighted_ensemble", 0.7, False),
        ("lw-a", 0.8, True),
        ("mlp", 0.6, False),
    ]
    assert task_outcome({"labelled": False}) is None
