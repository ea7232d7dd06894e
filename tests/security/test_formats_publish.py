"""Each attack class of issue 15 part A, uploaded through the public API to the real worker.

Every test asserts the refusal code, that no marker file appeared anywhere, that nothing was
stored (no published version, no orphaned object in S3), and that the worker still publishes
a good package afterwards.
"""

from __future__ import annotations

import pytest

from marketplace.jobs.choices import JobStatus
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import Learnware, LearnwareVersion
from tests.integration.test_publish import bucket_keys, finished, upload
from tests.support import hostile_packages as hostile
from tests.support import packages

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _worker_still_publishes(client, name: str) -> None:
    body = upload(client, packages.build_table_model_package(name=name)).json()
    assert finished(body["job"]).status == JobStatus.SUCCEEDED


# Models refused by the operator check that runs in the sandbox child, after torch.jit.load
# and before any call: the web process cannot see operators without loading the model.
IN_SANDBOX = {
    "from-file": (lambda marker: hostile.FromFileModel(str(marker)), "aten::from_file"),
    "save": (lambda marker: hostile.SaveModel(str(marker)), "aten::save"),
}


@pytest.mark.parametrize("case", sorted(IN_SANDBOX))
def test_a_model_with_a_file_operator_is_rejected_in_the_sandbox_before_it_runs(
    case, celery_worker, s3_storage, alice, client_for
):
    make, operator = IN_SANDBOX[case]
    marker = hostile.marker_path()
    client = client_for(alice)
    before = set(bucket_keys(s3_storage))

    response = upload(client, hostile.table_package(hostile.scripted(make(marker)), name=f"hostile-{case}"))
    assert response.status_code == 202, response.json()
    job = finished(response.json()["job"])
    assert job.status == JobStatus.REJECTED, job.error
    assert job.error["code"] == "upload:user:unsafe-operator" and job.error["details"]["operator"] == operator
    assert "log" not in job.error["details"]  # nothing the child printed goes back to the uploader
    version = LearnwareVersion.objects.get(
        learnware_id=response.json()["learnware"], number=response.json()["version"]
    )
    assert (
        version.status == VersionStatus.REJECTED
        and version.rejection_reasons[0]["code"] == "upload:user:unsafe-operator"
    )
    assert set(bucket_keys(s3_storage)) == before  # the rejected package is deleted
    assert hostile.markers_left(marker) == []
    _worker_still_publishes(client, f"after-{case}")


# Refused in the web process at upload (pure byte checks), before anything is queued or stored.
AT_UPLOAD = {
    "setstate": (
        lambda marker: hostile.table_package(
            hostile.scripted(hostile.SetstateModel(str(marker))), name="setstate"
        ),
        "upload:user:load-time-code",
    ),
    "export-pt2": (
        lambda marker: hostile.table_package(
            hostile.pt2_with_pickle_payload(str(marker)), name="pt2", file="model.pt2"
        ),
        "upload:user:unsafe-format",
    ),
    "export-renamed-pt": (
        lambda marker: hostile.table_package(hostile.pt2_with_pickle_payload(str(marker)), name="pt2-as-pt"),
        "upload:user:unsafe-format",
    ),
    "adapter-400k-tensors": (
        lambda marker: hostile.adapter_package_with_weights(
            hostile.many_tensors_safetensors(400_000), name="wide"
        ),
        "upload:user:adapter-header",
    ),
}


@pytest.mark.parametrize("case", sorted(AT_UPLOAD))
def test_a_package_that_would_run_code_or_exhaust_memory_while_loading_is_refused_at_upload(
    case, celery_worker, s3_storage, alice, client_for
):
    build, code = AT_UPLOAD[case]
    marker = hostile.marker_path()
    data = build(marker)
    marker.unlink(
        missing_ok=True
    )  # building a __setstate__ model may have run it here; only the market's side counts
    client = client_for(alice)
    before = set(bucket_keys(s3_storage))

    response = upload(client, data)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == code
    assert not Learnware.objects.filter(owner=alice).exists()
    assert not LearnwareVersion.objects.filter(learnware__owner=alice).exists()
    assert set(bucket_keys(s3_storage)) == before
    assert hostile.markers_left(marker) == []
    _worker_still_publishes(client, f"after-{case}")
