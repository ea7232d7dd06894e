"""A published text model on a published base runs on the base version it was pinned to at publish, with
the Python client against a live server and the real worker.

A tiny random BERT (``cls`` pooling) is published, a TorchScript head of its width publishes on it
(pinned to v1), then the base publishes v2 with other weights. ``Client.download`` fetches v1's package
(not the newest), and the head's probabilities on raw texts equal the softmax of the head on v1's [CLS]
states computed here with plain transformers, which differ from v2's. The same package run isolated
(``IsolatedPredictor``: the base found from the pin this client recorded, or, for a package this client
never downloaded, given as its zip) gives the in-process predictions. v2's zip or folder given for the
pinned v1 is refused by sha256 / folder digest; a version without a pin (published before pins) keeps
the newest base; a pinned version the market no longer serves is ``download:user:base-not-visible``.
"""

from __future__ import annotations

import io
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.base_heads import BaseModelMissing, base_cache_dir  # noqa: E402
from lwm_client.errors import IntegrityError  # noqa: E402
from lwm_client.isolated import IsolatedPredictor, file_sha256  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

from marketplace.learnwares.choices import VersionStatus  # noqa: E402
from marketplace.learnwares.models import LearnwareVersion  # noqa: E402
from tests.integration.test_client import lwm  # noqa: E402, F401 - the logged-in client fixture
from tests.integration.test_text_model_on_published_base import _cls_embeddings  # noqa: E402
from tests.support.base_adapters import TEXTS  # noqa: E402
from tests.support.base_model_packages import base_model_folder, base_model_package  # noqa: E402
from tests.support.packages import build_text_model_package  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _softmax_of_head(package: Path, E: np.ndarray) -> np.ndarray:
    with zipfile.ZipFile(package) as zf:
        head = torch.jit.load(io.BytesIO(zf.read("model.pt")))
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(E.astype(np.float32))).double(), dim=1).numpy()


def test_a_text_model_runs_on_its_pinned_base_version_in_process_and_isolated(
    lwm: Client,  # noqa: F811
    celery_worker,
    s3_storage,
    tmp_path,
):
    folders = [base_model_folder(tmp_path / f"bert-{s}", "bert", seed=s) for s in (11, 12)]
    zips = [base_model_package(f, name="pinned-cls-bert", pooling="cls") for f in folders]
    base = lwm.publish(zips[0], timeout=240)
    key = lwm.learnware(base.learnware).base_model
    head = lwm.publish(
        build_text_model_package(name="pinned-head", width=32, seed=5, manifest={"base_model": key}),
        timeout=240,
    )
    assert head.status == "published"
    base_v2 = lwm.publish(zips[1], learnware=base.learnware, timeout=240)
    assert (base_v2.status, base_v2.version) == ("published", 2)

    pin = lwm.version(head.learnware, head.version).base_pin
    assert (pin["learnware_id"], pin["version"]) == (base.learnware, 1)

    got = lwm.download(head.learnware, dest=tmp_path / "dl")
    cached = base_cache_dir() / f"{pin['package_sha256']}.zip"
    assert cached.read_bytes() == zips[0]  # v1's package, not the newest
    v1, v2 = (_cls_embeddings(f, TEXTS) for f in folders)
    expected, newest = _softmax_of_head(got.path, v1), _softmax_of_head(got.path, v2)
    assert np.abs(expected - newest).max() > 1e-3  # the two versions' predictions differ

    model = lwm.load(got.path)
    assert isinstance(model, Predictor)  # downloaded and verified: in-process
    in_process = model.predict_proba(TEXTS)
    assert_allclose(in_process, expected, atol=1e-5)

    # The newer version given for the pinned one: its zip fails the pin's sha256, its folder the digest.
    (tmp_path / "v2.zip").write_bytes(zips[1])
    with pytest.raises(IntegrityError) as err:
        Client.load(got.path, isolate=False, base=tmp_path / "v2.zip").predict_proba(TEXTS)
    assert err.value.code == "predict:user:base-head-base-checksum"
    with pytest.raises(IntegrityError) as err:
        Client.load(got.path, isolate=False, base=folders[1]).predict_proba(TEXTS)
    assert err.value.code == "predict:user:adapter-base-checksum"
    pinned_folder = Client.load(got.path, isolate=False, base=folders[0])
    assert_allclose(pinned_folder.predict_proba(TEXTS), expected, atol=1e-5)

    # Isolated: the base found from the pin this client recorded; then, the records gone (a package this
    # client never downloaded), the base given as its zip.
    (tmp_path / "v1.zip").write_bytes(zips[0])
    for given in (None, tmp_path / "v1.zip"):
        if given is not None:
            shutil.rmtree(base_cache_dir() / "by-package")
        isolated = Client.load(got.path, isolate=True, base=given)
        assert isinstance(isolated, IsolatedPredictor)
        assert_allclose(isolated.predict_proba(TEXTS), in_process, atol=1e-6)
        assert list(isolated.predict(TEXTS)) == list(model.predict(TEXTS))

    # An unpinned version (published before pins existed) runs on the newest base, as before.
    LearnwareVersion.objects.filter(learnware_id=head.learnware).update(base_pin={})
    shutil.rmtree(base_cache_dir())
    legacy = lwm.load(lwm.download(head.learnware, dest=tmp_path / "legacy").path)
    assert_allclose(legacy.predict_proba(TEXTS), newest, atol=1e-5)

    # The pinned version no longer served: named at download.
    LearnwareVersion.objects.filter(learnware_id=head.learnware).update(base_pin=pin)
    LearnwareVersion.objects.filter(learnware_id=base.learnware, number=1).update(status=VersionStatus.YANKED)
    shutil.rmtree(base_cache_dir())
    with pytest.raises(BaseModelMissing) as missing:
        lwm.download(head.learnware, dest=tmp_path / "gone")
    assert missing.value.code == "download:user:base-not-visible"
    assert file_sha256(got.path) == got.sha256
