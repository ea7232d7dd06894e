"""The submission page lists each imputed column with the learnware whose RKME filled it and the method,
as the report (workers/pipelines/reuse_spec.py, ``public_plan``) gives them."""

from __future__ import annotations

import html
import re

import pytest

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.submissions.models import Submission
from tests.marketplace.portal.factories import make_learnware

pytestmark = pytest.mark.django_db


def test_each_imputed_column_names_its_source_learnware_and_method(web_for, alice):
    source = make_learnware(alice, name="filler")
    imputed = {
        "columns": ["a", "c"],
        "method": "rkme-kernel-regression",
        "source": {
            "version_id": source.id,
            "learnware_id": source.learnware_id,
            "name": "filler",
            "version": source.number,
            "marginal_mmd2": 0.01,
        },
        "explanation": "2 column(s) you lack (a, c) are predicted from filler v1's RKME",
    }
    columns = {"matched": ["b"], "missing": ["a", "c"], "extra": [], "imputed": imputed, "column_map": {}}
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package")
    submission = Submission.objects.create(
        owner=alice, job=job, data_format="csv", results={"spec": {"columns": columns}}, name="lacking"
    )
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    rows = re.findall(
        r'<li data-imputed-column="([^"]+)" data-imputed-method="([^"]+)" '
        r'data-imputed-source="(\d+)">(.*?)</li>',
        page,
        flags=re.S,
    )
    assert [r[0] for r in rows] == ["a", "c"]
    for _, method, version_id, body in rows:
        assert method == "rkme-kernel-regression" and int(version_id) == source.id
        assert f'href="/learnwares/{source.learnware_id}/">filler</a> v{source.number}' in body
        assert "kernel regression on its RKME" in body
    assert html.escape(imputed["explanation"]) in page


def test_an_old_report_without_the_learnware_id_still_names_the_source(web_for, alice):
    imputed = {
        "columns": ["a"],
        "method": "rkme-kernel-regression",
        "source": {"version_id": 9, "name": "older", "version": 3, "marginal_mmd2": 0.02},
        "explanation": "…",
    }
    columns = {"matched": ["b", "c"], "missing": ["a"], "extra": [], "imputed": imputed, "column_map": {}}
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package")
    submission = Submission.objects.create(
        owner=alice, job=job, data_format="csv", results={"spec": {"columns": columns}}, name="old"
    )
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    assert re.search(r'data-imputed-column="a"[^>]*>.*?the RKME of older v3, by', page, flags=re.S)


def test_per_column_methods_and_what_imputation_cost_are_listed(web_for, alice):
    source = make_learnware(alice, name="filler")
    imputed = {
        "columns": ["a", "c"],
        "method": "per-column",
        "per_column": [
            {"column": "a", "method": "labelled-rows-ridge", "alpha": 0.1, "rows": 42},
            {"column": "c", "method": "rkme-kernel-regression"},
        ],
        "source": {
            "version_id": source.id,
            "learnware_id": source.learnware_id,
            "name": "filler",
            "version": 1,
        },
        "explanation": "…",
    }
    cost = {
        "metric": "accuracy",
        "columns": ["a"],
        "methods": {"a": "labelled-rows-ridge"},
        "rows": 42,
        "folds": 5,
        "members": [
            {
                "version_id": source.id,
                "name": "filler",
                "with_column": 0.8125,
                "imputed": 0.75,
                "cost": 0.0625,
            }
        ],
    }
    columns = {"matched": ["b"], "missing": ["a", "c"], "extra": [], "imputed": imputed, "column_map": {}}
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package")
    submission = Submission.objects.create(
        owner=alice,
        job=job,
        data_format="csv",
        results={
            "spec": {"columns": columns},
            "evaluate": {"labelled": False, "statement": "", "imputation_cost": cost},
        },
        name="taught",
    )
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    rows = dict(re.findall(r'<li data-imputed-column="([^"]+)" data-imputed-method="([^"]+)"', page))
    assert rows == {"a": "labelled-rows-ridge", "c": "rkme-kernel-regression"}
    assert re.search(r'data-imputed-column="a"[^>]*>.*?learned from your 42 labelled rows', page, flags=re.S)
    member = re.search(
        r'data-cost-member="(\d+)" data-cost-true="([^"]+)" data-cost-imputed="([^"]+)">(.*?)</li>', page
    )
    assert member and int(member[1]) == source.id
    assert (float(member[2]), float(member[3])) == (0.8125, 0.75)
    assert "0.813 with the true column" in member[4] and "0.750 with it imputed" in member[4]


def test_each_member_is_named_with_the_rkme_that_filled_its_columns(web_for, alice):
    source = make_learnware(alice, name="filler")
    card = {"version_id": source.id, "learnware_id": source.learnware_id, "name": "filler", "version": 1}
    other = {"version_id": source.id + 100, "learnware_id": 7, "name": "other", "version": 2}
    unused = {"version_id": source.id + 200, "learnware_id": 8, "name": "unused", "version": 1}
    filled_by = [card | {"rkme": "own"}, other | {"rkme": "identified"}, unused | {"rkme": "own"}]
    imputed = {
        "columns": ["a"],
        "method": "rkme-kernel-regression",
        "per_column": [{"column": "a", "method": "rkme-kernel-regression", "filled_by": filled_by}],
        "source": card | {"marginal_mmd2": 0.01},
        "explanation": "…",
    }
    columns = {"matched": ["b"], "missing": ["a"], "extra": [], "imputed": imputed, "column_map": {}}
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package")
    shipped = {"members": [{"version_id": card["version_id"]}, {"version_id": other["version_id"]}]}
    submission = Submission.objects.create(
        owner=alice,
        job=job,
        data_format="csv",
        results={"spec": {"columns": columns}, "package": shipped},
        name="per-member",
    )
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    found = re.findall(
        r'data-filled-member="(\d+)" data-filled-rkme="(\w+)" data-filled-method="[^"]*">(.*?)</li>', page
    )
    members = {version_id: body for version_id, _, body in found}
    assert members == {
        str(card["version_id"]): "filler v1: its own RKME",
        str(other["version_id"]): "other v2: the RKME of filler v1 (its own cannot fill this space)",
    }
    assert f'data-filled-member="{unused["version_id"]}"' not in page  # not a member of the package


def test_a_column_chosen_per_member_names_each_members_fill_and_both_errors(web_for, alice):
    source = make_learnware(alice, name="filler")
    card = {"version_id": source.id, "learnware_id": source.learnware_id, "name": "filler", "version": 1}
    other = {"version_id": source.id + 100, "learnware_id": 7, "name": "other", "version": 2}
    errors = {"error_ridge": 0.7075}
    filled_by = [
        card | {"rkme": "own", "method": "rkme-kernel-regression", "error_rkme": 0.2123} | errors,
        other | {"rkme": "own", "method": "labelled-rows-ridge", "error_rkme": 3.0128} | errors,
    ]
    row = {"column": "a", "method": "per-member", "filled_by": filled_by, "rows": 60, "alpha": 0.1}
    imputed = {
        "columns": ["a"],
        "method": "per-member",
        "per_column": [row | errors | {"error_rkme": 3.0128}],
        "source": other | {"marginal_mmd2": 0.01},
        "explanation": "…",
    }
    columns = {"matched": ["b"], "missing": ["a"], "extra": [], "imputed": imputed, "column_map": {}}
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package")
    shipped = {"members": [{"version_id": card["version_id"]}, {"version_id": other["version_id"]}]}
    submission = Submission.objects.create(
        owner=alice,
        job=job,
        data_format="csv",
        results={"spec": {"columns": columns}, "package": shipped},
        name="per-member-choice",
    )
    page = web_for(alice).get(f"/tasks/{submission.id}/").content.decode()
    assert "from your 60 labelled rows (ridge) or from an RKME, whichever predicted it better there" in page
    found = re.findall(
        r'data-filled-member="(\d+)" data-filled-rkme="\w+" data-filled-method="([^"]+)">(.*?)</li>', page
    )
    members = {int(v): (method, body) for v, method, body in found}
    assert members[card["version_id"]][0] == "rkme-kernel-regression"
    assert members[card["version_id"]][1].startswith("filler v1: its own RKME")
    assert "ridge 0.708, its RKME 0.212" in members[card["version_id"]][1]
    assert members[other["version_id"]][0] == "labelled-rows-ridge"
    assert members[other["version_id"]][1].startswith("other v2: the ridge learned from your labelled rows")
    assert "ridge 0.708, its RKME 3.013" in members[other["version_id"]][1]
