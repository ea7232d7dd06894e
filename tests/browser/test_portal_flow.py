"""The portal end to end in Chromium: sign up -> publish two packages -> find them by text
and by data -> submit a task with labels -> watch it -> see the chart -> download the assembly."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support import packages

# Read by the session worker when it starts: small specs and sandbox limits keep the flow quick.
os.environ.setdefault("LWM_RKME_K", "10")
os.environ.setdefault("LWM_SANDBOX_WALL_SECONDS", "60")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COLUMNS = ["f1", "f2", "f3"]
JOB_TIMEOUT = 240_000  # ms: a publish or a reuse pipeline on a shared 2-core machine


def rows(n: int, *, seed: int, shift: float = 0.0) -> np.ndarray:
    return packages.table_data(COLUMNS, n, seed=seed, shift=shift)


def labelled_csv(X: np.ndarray) -> str:
    labels = np.where(X[:, 0] > np.median(X[:, 0]), "class1", "class0")
    return (
        "f1,f2,f3,label\n"
        + "\n".join(",".join(f"{v:.5f}" for v in row) + f",{y}" for row, y in zip(X, labels, strict=True))
        + "\n"
    )


def publish(
    page, shots, live_server, tmp_path: Path, name: str, description: str, data: np.ndarray, seed: int
) -> str:
    package = packages.build_table_model_package(
        COLUMNS, 2, name=name, data=data, seed=seed, manifest={"description": description}
    )
    path = tmp_path / f"{name}.zip"
    path.write_bytes(package)
    page.goto(f"{live_server.url}/learnwares/new/")
    page.get_by_label("Package").set_input_files(str(path))
    shots(f"upload-{name}")
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_url(re.compile(r"/learnwares/\d+/v1/$"))
    shots(f"publishing-{name}")
    # job.js polls the job API and reloads the page when the job has finished.
    page.locator(".callout.ok").wait_for(timeout=JOB_TIMEOUT)
    assert "Published" in page.locator(".callout.ok").inner_text()
    shots(f"published-{name}")
    return page.url.rsplit("/v1/", 1)[0] + "/"


def test_sign_up_publish_find_submit_and_download(
    page, shots, live_server, celery_worker, s3_storage, tmp_path
):
    page.goto(f"{live_server.url}/")
    shots("home-empty")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Username").fill("portal-user")
    page.get_by_label("Email").fill("portal@example.com")
    page.get_by_label("Password", exact=True).fill("portal-Pass-2024")
    page.get_by_label("Password confirmation").fill("portal-Pass-2024")
    shots("signup")
    page.get_by_role("button", name="Create account").click()
    assert "Welcome, portal-user" in page.locator(".messages").inner_text()

    near = publish(
        page,
        shots,
        live_server,
        tmp_path,
        "tabular-churn-classifier",
        "Predicts customer churn from three usage features.",
        rows(80, seed=0),
        seed=0,
    )
    publish(
        page,
        shots,
        live_server,
        tmp_path,
        "shifted-sensor-classifier",
        "Flags faulty sensors from three shifted readings.",
        rows(80, seed=1, shift=4.0),
        seed=1,
    )

    page.goto(near)
    assert page.locator("h1").first.inner_text() == "tabular-churn-classifier"
    assert page.locator("svg[aria-label^='RKME of']").count() == 1
    shots("learnware-page")
    page.set_viewport_size({"width": 390, "height": 844})
    shots("learnware-page-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Find by text: the card mentions churn.
    page.goto(f"{live_server.url}/")
    page.get_by_label("Search learnwares").fill("customer churn")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/learnwares/\?q=customer"))
    first = page.locator(".lw-card h3 a").first
    assert first.inner_text() == "tabular-churn-classifier"
    shots("text-search")

    # Find by data: half the rows like each learnware's training data, so both match and mix.
    data_csv = tmp_path / "my-data.csv"
    data_csv.write_text(
        packages.csv_text(COLUMNS, np.vstack([rows(40, seed=5), rows(40, seed=6, shift=4.0)]))
    )
    page.goto(f"{live_server.url}/search/data/")
    page.get_by_label("File").set_input_files(str(data_csv))
    page.get_by_role("button", name="Search").click()
    page.locator("#results-h").wait_for()
    results = page.locator("#results-h + .table-wrap tbody tr")
    assert results.count() == 2
    assert {"tabular-churn-classifier", "shifted-sensor-classifier"} == {
        results.nth(i).get_by_role("link").inner_text() for i in range(2)
    }
    weights = page.locator("svg[aria-label^='Suggested mixture'] rect")
    assert weights.count() == 2  # a bar per mixture component
    shots("data-search")
    results.first.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/learnwares/\d+/\?compare=1$"))
    page.get_by_text("your data (from your last search)").wait_for()
    assert page.locator("svg[aria-label^='RKME of'] circle[fill='#d1242f']").count() == 80  # K = n = 80 rows
    shots("learnware-page-with-my-data")

    # Submit a task with a labelled sample and follow it to the end.
    labelled = tmp_path / "labelled.csv"
    labelled.write_text(labelled_csv(np.vstack([rows(45, seed=7), rows(45, seed=8, shift=4.0)])))
    page.goto(f"{live_server.url}/tasks/new/")
    page.get_by_label("Name (optional)").fill("churn task")
    page.get_by_label("Data", exact=True).set_input_files(str(data_csv))
    page.locator("#id_labelled").set_input_files(str(labelled))
    shots("submit")
    page.get_by_role("button", name="Submit task").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/$"))
    assert page.locator("[data-stage]").count() == 6
    shots("task-running")
    page.locator("#pkg-h").wait_for(timeout=JOB_TIMEOUT)
    shots("task-results")
    chart = page.locator("svg[aria-label^='Held-out accuracy']")
    assert chart.count() == 1 and chart.locator("rect").count() >= 3  # methods + two baselines
    assert "Baseline: from scratch" in chart.inner_html()
    assert page.locator("#rank-h + p + .table-wrap tbody tr").count() == 2

    with page.expect_download() as info:
        page.get_by_role("link", name="Download the assembly").click()
    content = Path(info.value.path()).read_bytes()
    shown_sha = page.locator("#pkg-h ~ dl dd.mono").first.inner_text().strip()
    assert hashlib.sha256(content).hexdigest() == shown_sha
    assert "learnware.yaml" in zipfile.ZipFile(io.BytesIO(content)).namelist()

    page.goto(f"{live_server.url}/accounts/tasks/")
    assert "churn task" in page.locator("table").inner_text()
    shots("my-tasks")
    page.goto(f"{live_server.url}/")
    shots("home")
