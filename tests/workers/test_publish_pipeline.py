"""The publish pipeline run in-process on the test database (the sandbox is real, the worker is not)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from django.core.files.storage import default_storage

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import AuditLog, LearnwareVersion
from marketplace.learnwares.services import learnware_upload
from specs import RFFSketch, bytes_to_arrays, rkme_from_json
from tests.support import packages
from workers.pipelines.publish import publish_version

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_sandbox(settings):
    settings.LWM_SANDBOX_CPU_SECONDS = 3
    settings.LWM_SANDBOX_WALL_SECONDS = 20
    settings.LWM_SANDBOX_MEMORY_MB = 1024
    settings.LWM_RKME_K = 10


def _report(stage, done, total, message=""):
    pass


def _publish(user, data):
    lw, version, job = learnware_upload(user=user, data=data)
    try:
        publish_version(version_id=version.id, report=_report)
    except ValidationFailed:
        pass
    version.refresh_from_db()
    return lw, version


def test_a_table_model_with_a_client_rkme_is_published_with_its_spec_and_fingerprints(alice):
    data = packages.build_table_model_package(columns=["p1", "p2", "p3"], name="client-rkme")
    lw, version = _publish(alice, data)
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    spec = version.specification
    client = rkme_from_json(zipfile.ZipFile(io.BytesIO(data)).read("rkme.json"))
    np.testing.assert_allclose(np.array(spec.rkme["Z"]), client.Z_)
    space = spec.feature_space
    expected = RFFSketch(space.dim, space.gamma, space.sketch_dim, random_state=space.sketch_seed).transform(
        client.Z_, client.beta_
    )
    np.testing.assert_allclose(np.frombuffer(spec.sketch, dtype="<f4"), expected, rtol=1e-6)
    np.testing.assert_allclose(spec.self_term, client.self_term(), rtol=1e-12)
    _, arrays = bytes_to_arrays(spec.probe_fingerprint)
    assert arrays["outputs"].shape == (64, 2)
    card = np.frombuffer(spec.card_embedding, dtype="<f4")
    assert card.shape == (384,) and abs(np.linalg.norm(card) - 1) < 1e-5
    with default_storage.open(version.package.name, "rb") as handle:
        assert handle.read() == data
    assert [a.action for a in AuditLog.objects.filter(version=version).order_by("created_at")] == [
        "version.uploaded",
        "version.validating",
        "version.published",
    ]


def test_a_crashing_model_is_rejected_and_leaves_no_file(alice):
    data = packages.FAILURES["crash"][0]()
    lw, version = _publish(alice, data)
    assert version.status == VersionStatus.REJECTED
    assert version.rejection_reasons[0]["code"] == "publish:user:crashed"
    assert not version.package
    assert not LearnwareVersion.objects.filter(id=version.id).exclude(package="").exists()


def test_a_table_sample_stores_its_per_column_rms_beside_the_rkme_for_reuse_in_its_units(alice):
    columns = ["u1", "u2", "u3"]
    X = packages.table_data(columns, 60, seed=4) * np.array(
        [0.01, 1.0, 250.0]
    )  # columns in very different units
    lw, version = _publish(
        alice, packages.build_table_model_package(columns=columns, sample="csv", data=X, name="units")
    )
    assert version.status == VersionStatus.PUBLISHED, version.rejection_reasons
    spec = version.specification
    assert spec.feature_space.standardization["scale_invariant"] is True
    expected = [
        float(np.sqrt(np.sum(X[:, j] ** 2) / X.shape[0])) for j in range(3)
    ]  # by hand, column by column
    np.testing.assert_allclose(spec.rkme["unit_rms"], expected, rtol=1e-6)  # the CSV carries ~17 digits
    rkme_from_json(json.dumps(spec.rkme))  # the stored document is still a valid RKME
