"""Submission pages: create with bad and good input, owner-only pages, results, charts, publish."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.submissions.models import Submission
from tests.marketplace.portal.factories import csv_rows

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def form(**extra):
    data = {
        "name": "my task",
        "task": "classification",
        "label_column": "label",
        "data": SimpleUploadedFile("data.csv", csv_rows(20)),
    }
    data.update(extra)
    return data


def test_submitting_needs_a_login(web):
    assert web.get("/tasks/new/").status_code == 302


def test_a_task_with_labels_and_requirements_is_created_and_followed(web_for, alice):
    client = web_for(alice)
    response = client.post(
        "/tasks/new/",
        form(
            labelled=SimpleUploadedFile("lab.csv", csv_rows(20, label=True)),
            licenses=["MIT"],
            max_modules="2",
            methods=["best_single", "weighted_ensemble"],
        ),
    )
    submission = Submission.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/tasks/{submission.id}/"
    assert submission.has_labels and submission.data_format == "csv" and submission.labelled_format == "csv"
    assert submission.requirements == {
        "licenses": ["MIT"],
        "methods": ["best_single", "weighted_ensemble"],
        "max_modules": 2,
        "label_column": "label",
    }
    page = text(client.get(response["Location"]))
    assert f'data-job-url="/api/v1/jobs/{submission.job_id}/"' in page
    assert page.count("data-stage=") == 6


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"data": SimpleUploadedFile("data.xlsx", b"x")}, "use a .csv, .npz, .zip (images) or rkme .json"),
        (
            {"labelled": SimpleUploadedFile("lab.json", b"{}")},
            "the labelled sample is a .csv, .npz or .zip (images)",
        ),
        ({"modality": "image"}, "A CSV cannot hold images"),
        ({"modality": "audio"}, "Select a valid choice"),
        ({"task": "embedding"}, "Select a valid choice"),
        ({"max_modules": "99"}, "less than or equal to 10"),
        ({"holdout_fraction": "0.9"}, "less than or equal to 0.5"),
        ({"methods": ["teleport"]}, "Select a valid choice"),
        ({"licenses": ["WTFPL-9"]}, "Select a valid choice"),
    ],
)
def test_bad_task_input_is_refused_with_a_message(web_for, alice, extra, message):
    response = web_for(alice).post("/tasks/new/", form(**extra))
    assert response.status_code == 400 and message in text(response)
    assert not Submission.objects.exists()


def test_a_zip_of_pngs_with_labels_is_created_as_an_image_task(web_for, alice):
    import hashlib

    from tests.support.image_market import image_task, images_zip

    task = image_task("upright", n=6, n_labelled=6, seed=1)
    data, labelled = images_zip(task["images"]), images_zip(task["images_l"], task["y_l"])
    client = web_for(alice)
    page = text(client.get("/tasks/new/"))
    assert (
        'accept=".csv,.npz,.zip,.json"' in page
        and 'accept=".csv,.npz,.zip"' in page
        and "<strong>Images</strong>" in page
    )
    response = client.post(
        "/tasks/new/",
        form(
            data=SimpleUploadedFile("photos.zip", data), labelled=SimpleUploadedFile("labelled.zip", labelled)
        ),
    )
    submission = Submission.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/tasks/{submission.id}/"
    assert (submission.modality, submission.data_format, submission.labelled_format) == (
        "image",
        "images",
        "images",
    )
    assert submission.data_sha256 == hashlib.sha256(data).hexdigest() and submission.data_file.name.endswith(
        ".zip"
    )
    assert submission.labelled_file.open("rb").read() == labelled


def test_an_image_npz_is_sent_with_the_images_modality(web_for, alice):
    from tests.support.image_market import image_task, images_npz

    task = image_task("upright", n=6, seed=2)
    client = web_for(alice)
    response = client.post(
        "/tasks/new/",
        form(data=SimpleUploadedFile("images.npz", images_npz(task["images"])), modality="image"),
    )
    submission = Submission.objects.get(owner=alice)
    assert response.status_code == 302 and (submission.modality, submission.data_format) == ("image", "npz")
    client.post("/tasks/new/", form(data=SimpleUploadedFile("rows.npz", images_npz(task["images"]))))
    assert (
        Submission.objects.exclude(id=submission.id).get().modality == "table"
    )  # without the choice, a table


def test_the_active_submission_limit_is_shown_as_a_form_error(web_for, alice, settings):
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1
    client = web_for(alice)
    assert client.post("/tasks/new/", form()).status_code == 302
    refused = client.post("/tasks/new/", form())
    assert refused.status_code == 400 and "submission:user:too-many-active" in text(refused)


@pytest.mark.parametrize("who,status", [("owner", 200), ("other", 404), ("admin", 404)])
def test_a_submission_is_seen_by_its_owner_only(web_for, alice, bob, admin_user, who, status):
    web_for(alice).post("/tasks/new/", form())
    submission = Submission.objects.get()
    client = web_for({"owner": alice, "other": bob, "admin": admin_user}[who])
    assert client.get(f"/tasks/{submission.id}/").status_code == status
    assert client.post(f"/tasks/{submission.id}/publish/").status_code in (
        (302,) if who == "owner" else (404,)
    )


RESULTS = {
    "identify": {
        "key": "k1",
        "seconds": 0.1,
        "explanation": "2 ranked",
        "singles": [
            {"learnware_id": 1, "version_id": 1, "version": 1, "name": "lw-a", "mmd2": 0.01, "rank": 1},
            {"learnware_id": 2, "version_id": 2, "version": 1, "name": "lw-b", "mmd2": 0.05, "rank": 2},
        ],
        "mixture": {
            "proposed": True,
            "components": [
                {"name": "lw-a", "version": 1, "weight": 0.7},
                {"name": "lw-b", "version": 1, "weight": 0.3},
            ],
        },
    },
    "rank": {
        "key": "k2",
        "skipped": False,
        "explanation": "min-max then averaged",
        "candidates": [
            {
                "learnware_id": 1,
                "version": 1,
                "name": "lw-a",
                "rank": 1,
                "combined": 0.9,
                "scores": {"logme": 1.5, "accuracy": 0.8, "mmd2": 0.01},
            }
        ],
    },
    "assemble": {
        "key": "k3",
        "chosen": "weighted_ensemble",
        "reason": "highest validation accuracy",
        "members": [{"learnware_id": 1, "version": 1, "name": "lw-a", "prior_weight": 0.7, "license": "MIT"}],
    },
    "evaluate": {
        "key": "k4",
        "labelled": True,
        "metric": "accuracy",
        "n_test": 10,
        "n_train": 30,
        "chosen": "weighted_ensemble",
        "methods": {"best_single": {"accuracy": 0.8}, "weighted_ensemble": {"accuracy": 0.9}},
        "baselines": {
            "best_single": {"name": "lw-a", "score": 0.8},
            "from_scratch": {
                "best": "mlp",
                "models": {"mlp": {"accuracy": 0.6}, "logistic_regression": {"accuracy": 0.5}},
            },
        },
        "verdict": {"beats_both": True},
        "statement": "It beats both baselines.",
    },
    "package": {
        "key": "k5",
        "sha256": "ab" * 32,
        "size": 2048,
        "files": ["learnware.yaml", "recipe.json"],
        "license": "MIT",
        "method": "weighted_ensemble",
    },
}


def finished_submission(alice) -> Submission:
    job = Job.objects.create(
        kind="submission", owner=alice, status=JobStatus.SUCCEEDED, stage="package", progress=100
    )
    submission = Submission.objects.create(
        owner=alice, job=job, data_format="csv", results=RESULTS, name="done task"
    )
    submission.package.save("package.zip", ContentFile(b"not really a zip"), save=True)
    return submission


def test_results_show_ranking_chart_against_baselines_and_download(web_for, alice):
    submission = finished_submission(alice)
    page = text(web_for(alice).get(f"/tasks/{submission.id}/"))
    assert "It beats both baselines." in page
    chart = page[page.index('aria-label="Held-out accuracy') :]
    chart = chart[: chart.index("</svg>")]
    # One bar per method plus the two baselines; the chosen one in the "chosen" colour.
    assert chart.count("<rect") == 4 and "#1a7f37" in chart and chart.count("#8a5a00") == 2
    assert "Baseline: from scratch (mlp)" in chart
    assert ">LogME</abbr>" in page and "1.5" in page  # every rank score is a column, by its one display name
    assert f"/api/v1/submissions/{submission.id}/package" in page
    assert "Publish this assembly" in page
    assert "data-job-url" not in page  # finished: nothing to poll
    assert 'aria-label="Mixture weights' in page


def test_publishing_an_assembly_that_fails_its_checks_says_why(web_for, alice):
    submission = finished_submission(alice)
    response = web_for(alice).post(f"/tasks/{submission.id}/publish/", follow=True)
    assert "could not be published" in text(response) and "upload:user:" in text(response)


def test_cancel_is_a_post_by_the_owner(web_for, alice, bob):
    web_for(alice).post("/tasks/new/", form())
    submission = Submission.objects.get()
    assert web_for(bob).post(f"/tasks/{submission.id}/cancel/").status_code == 404
    assert web_for(alice).get(f"/tasks/{submission.id}/cancel/").status_code == 405
    assert web_for(alice).post(f"/tasks/{submission.id}/cancel/").status_code == 302
    job = Job.objects.get(id=submission.job_id)
    assert job.status == JobStatus.CANCELLED or job.cancel_requested


def test_my_tasks_lists_only_mine(web_for, alice, bob):
    finished_submission(alice)
    assert "done task" in text(web_for(alice).get("/accounts/tasks/"))
    assert "done task" not in text(web_for(bob).get("/accounts/tasks/"))
