"""The Python client against a live server and a real worker: the full cycle, and each error for its cause."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client, errors  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

from tests.support import packages  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
COLUMNS = ["c1", "c2", "c3"]


def domain(n: int, shift: float, seed: int) -> np.ndarray:
    return packages.table_data(COLUMNS, n, seed=seed, shift=shift)


@pytest.fixture
def lwm(live_server, alice, tmp_path, monkeypatch) -> Client:
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    client = Client(live_server.url, poll_interval=0.2)
    client.login("alice", "alice-pass-123")
    return client


def publish_domains(lwm: Client) -> list:
    uploads = []
    for i, shift in enumerate((0.0, 6.0)):
        data = packages.build_table_model_package(
            columns=COLUMNS, sample="csv", data=domain(120, shift, seed=i), name=f"domain-{i}", seed=i
        )
        uploads.append(lwm.publish(data, timeout=240))
    return uploads


def test_publish_search_by_data_submit_download_predict(lwm, celery_worker, s3_storage, tmp_path):
    uploads = publish_domains(lwm)
    assert [u.status for u in uploads] == ["published", "published"]
    assert Client(lwm.config.url).config.token == lwm.config.token  # login saved the token in the config file

    # Search by data: only the RKME leaves; the user's rows come from domain 1.
    user_X = domain(80, 6.0, seed=10)
    pair = lwm.spec_table(user_X, columns=COLUMNS)
    found = lwm.search_by_data(pair, k=5)
    assert found.results[0].learnware_id == uploads[1].learnware
    mmd = {h.learnware_id: h.mmd2 for h in found.results}
    assert mmd[uploads[1].learnware] < mmd[uploads[0].learnware]
    assert lwm.search("domain", modality="table").results  # text search sees them too

    # Submit with a labelled sample; wait; download the assembly; predict here.
    labelled_X = domain(60, 6.0, seed=11)
    labels = np.where(labelled_X[:, 0] > labelled_X[:, 0].mean(), "class1", "class0")
    sub = lwm.submit(pair, labelled=(labelled_X, labels), name="client-cycle", timeout=300)
    assert sub.status == "succeeded" and sub.package_sha256
    dl = lwm.download_submission(sub.id, dest=tmp_path)
    assert hashlib.sha256(dl.path.read_bytes()).hexdigest() == sub.package_sha256
    from workers.pipelines.reuse_package import PackagePredictor

    mine, reference = Predictor.from_path(dl.path), PackagePredictor.from_bytes(dl.path.read_bytes())
    assert_allclose(mine.predict_proba(user_X), reference.predict_proba(user_X), rtol=1e-9, atol=1e-12)
    assert list(mine.predict(user_X)) == list(reference.predict(user_X))

    # Download a learnware and predict with it.
    got = lwm.download(uploads[1].learnware, dest=tmp_path)
    assert got.sha256 == uploads[1].final.artifact_sha256
    probs = Predictor.from_path(got.path).predict_proba(user_X)
    assert probs.shape == (80, 2)
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_each_error_class_is_raised_for_its_cause(lwm, live_server, celery_worker, s3_storage, settings):
    with pytest.raises(errors.Unauthorized):
        Client(live_server.url, "lwm_not-a-token").me()
    with pytest.raises(errors.Unauthorized):
        Client(live_server.url).login("alice", "wrong", save=False)
    with pytest.raises(errors.NotFound):
        lwm.learnware(999_999)

    traversal = packages.path_traversal_package()
    with pytest.raises(errors.PackageError) as local_check:
        lwm.publish(traversal)
    with pytest.raises(errors.RejectedUpload) as at_upload:
        lwm.publish(traversal, check=False)
    assert local_check.value.code == at_upload.value.code == "upload:user:path-traversal"
    assert at_upload.value.reasons[0]["code"] == "upload:user:path-traversal"

    crash, code = packages.FAILURES["crash"]
    with pytest.raises(errors.RejectedUpload) as in_pipeline:
        lwm.publish(crash(), timeout=240)
    assert in_pipeline.value.code == code and in_pipeline.value.reasons[0]["code"] == code

    settings.LWM_SUBMISSION_MAX_ACTIVE = 0
    settings.LWM_SUBMISSION_RETRY_AFTER = 30
    impatient = Client(live_server.url, lwm.config.token, max_retry_after=5)
    with pytest.raises(errors.RateLimited) as limited:
        impatient.submit(_any_spec())
    assert limited.value.retry_after == 30.0 and limited.value.code == "submission:user:too-many-active"


def _any_spec():
    from lwm_client.models import FeatureSpace

    from specs import rkme_fit

    space = FeatureSpace(key="table-none", kind="table", dim=3, gamma=1 / 6)
    return rkme_fit(domain(30, 0.0, 1), 5, space.gamma, random_state=0), space


def test_a_tampered_stored_package_is_a_server_error_not_a_silent_download(
    lwm, celery_worker, s3_storage, tmp_path
):
    from django.core.files.base import ContentFile

    from marketplace.learnwares.models import LearnwareVersion

    upload = lwm.publish(packages.build_table_model_package(columns=COLUMNS, name="tampered"), timeout=240)
    version = LearnwareVersion.objects.get(learnware_id=upload.learnware, number=upload.version)
    storage, name = version.package.storage, version.package.name
    storage.delete(name)
    assert storage.save(name, ContentFile(b"not the package")) == name
    with pytest.raises(errors.ServerError) as caught:
        lwm.download(upload.learnware, upload.version, dest=tmp_path)
    assert caught.value.code == "download:app:checksum-mismatch"
    assert list(tmp_path.glob("*.zip")) == []
