"""The submission page of an assembled package on a published base model: its snippet says the client
fetches and checks the base version the run used (``recipe.base``: the spec stage's version, not the
base's newest) and shows the client calls that do it, with their real signatures."""

from __future__ import annotations

import html
import inspect
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus
from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion
from marketplace.submissions.models import Submission
from tests.marketplace.portal.test_submissions import RESULTS

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
from lwm_client import Client  # noqa: E402

pytestmark = pytest.mark.django_db


def _base(owner) -> tuple[BaseModel, list[LearnwareVersion]]:
    lw = Learnware.objects.create(
        owner=owner, name="tiny-bert", slug="tiny-bert", kind=Kind.BASE_MODEL, modality=Modality.TEXT,
        task=Task.EMBEDDING, license="MIT",
    )  # fmt: skip
    versions = [
        LearnwareVersion.objects.create(
            learnware=lw, number=n, status=VersionStatus.PUBLISHED, artifact_sha256=f"{n}" * 64
        )
        for n in (1, 2)
    ]
    row = BaseModel.objects.create(
        key="alice-tiny-bert", name="tiny-bert", modality=Modality.TEXT, hidden_size=32, num_layers=2,
        learnware=lw,
    )  # fmt: skip
    return row, versions


def _finished(owner, results, requirements) -> Submission:
    job = Job.objects.create(kind="submission", owner=owner, status=JobStatus.SUCCEEDED, stage="package")
    sub = Submission.objects.create(
        owner=owner, job=job, data_format="jsonl", modality="text", results=results, requirements=requirements
    )
    sub.package.save("package.zip", ContentFile(b"not really a zip"), save=True)
    return sub


def _snippet(page: str) -> str:
    start = page.index("data-base-usage")
    return html.unescape(page[page.index("<code>", start) + 6 : page.index("</code>", start)])


@pytest.mark.parametrize("kind", ["models", "adapter"])
def test_the_snippet_fetches_and_checks_the_base_version_the_run_used(web_for, alice, kind):
    row, (v1, _v2) = _base(alice)
    results = {**RESULTS, "spec": {"feature_space": "text-alice-tiny-bert", "base_version_id": v1.id}}
    requirements = {
        "feature_space": "text-alice-tiny-bert",
        **({"kind": "adapter"} if kind == "adapter" else {}),
    }
    sub = _finished(alice, results, requirements)
    page = web_for(alice).get(f"/tasks/{sub.id}/").content.decode()
    assert "recipe.base" in page and "fetches that base version and checks it" in page
    code = _snippet(page)
    # The run's version (v1), not the newest (v2): its learnware, number and package sha256.
    assert f"{row.name} v1" in code and f"learnware {v1.learnware_id}" in code and v1.artifact_sha256 in code
    assert "2" * 64 not in code
    assert (
        f'market.download_submission("{sub.id}", dest=".")' in code
        and "model = market.load(package.path)" in code
    )
    assert "recipe.base.folder_digest" in code and "download:user:base-not-visible" in code
    assert ("embedding row per text" in code) == (kind == "adapter")
    compile(code, "snippet.py", "exec")  # valid Python
    # The calls it shows are the client's, with the arguments it passes.
    assert {"submission_id", "dest"} <= set(inspect.signature(Client.download_submission).parameters)
    assert {"path", "base"} <= set(inspect.signature(Client.load).parameters)


def test_a_package_in_another_space_has_no_base_snippet(web_for, alice):
    sub = _finished(alice, RESULTS, {})
    assert "data-base-usage" not in web_for(alice).get(f"/tasks/{sub.id}/").content.decode()
