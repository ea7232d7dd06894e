"""ONNX learnwares through a live server and a real worker: converted by the client, published
(probed in the sandbox by ONNX Runtime), found by data, used in a labelled submission (ranked,
every method assembled, evaluated, packaged), downloaded and predicted here, equal to the
original models on held-out rows."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.packages import from_lightgbm, from_sklearn, from_torch, from_xgboost  # noqa: E402
from lwm_client.predict import Predictor  # noqa: E402

from tests.support import onnx_models as om  # noqa: E402
from workers.pipelines.reuse_methods import LABELLED_METHODS, applicable  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lwm(live_server, alice, tmp_path, monkeypatch) -> Client:
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    client = Client(live_server.url, poll_interval=0.2)
    client.login("alice", "alice-pass-123")
    return client


def _held_out(split: om.Split) -> np.ndarray:
    return split.X_test.astype(np.float32).astype(np.float64)


def _submit_and_check(
    lwm: Client, split: om.Split, ids: set[int], *, task: str, tmp_path: Path
) -> np.ndarray:
    """Search by the held-out rows, submit them labelled; check every stage; return the package's
    predictions."""
    X = _held_out(split)
    pair = lwm.spec_table(X, columns=split.columns)
    found = {h.learnware_id for h in lwm.search_by_data(pair, k=10).results}
    assert ids <= found
    sub = lwm.submit(pair, labelled=(X, split.y_test), task=task, name=f"onnx-{task}", timeout=600)
    assert sub.status == "succeeded", sub.error
    assert {c["learnware_id"] for c in sub.results["rank"]["candidates"]} == ids
    fitted = {r["method"] for r in sub.results["assemble"]["methods"]}
    # the label-free choice, then every labelled method that fits this many members
    assert fitted == {"label_free", *applicable(LABELLED_METHODS, len(ids), None)}
    assert all(r["validation"] for r in sub.results["assemble"]["methods"])
    assert sub.results["evaluate"]["labelled"] is True
    dl = lwm.download_submission(sub.id, dest=tmp_path)
    assert hashlib.sha256(dl.path.read_bytes()).hexdigest() == sub.package_sha256
    from workers.pipelines.reuse_package import PackagePredictor

    content = dl.path.read_bytes()
    mine, reference = Predictor.from_bytes(content), PackagePredictor.from_bytes(content)
    assert_allclose(mine.predict_proba(X), reference.predict_proba(X), rtol=1e-9, atol=1e-12)
    return mine.predict(X)


def test_sklearn_lightgbm_and_torch_classifiers_go_round_trip(lwm, celery_worker, s3_storage, tmp_path):
    import torch

    s = om.wine()
    originals = {
        "sklearn": om.sklearn_pipeline(),
        "lightgbm": om.lightgbm_classifier(),
        "torch": om.WineMLP.fit(),
    }
    packages = {
        "sklearn": from_sklearn(originals["sklearn"], columns=s.columns, sample=s.X_train, name="wine hgb"),
        "lightgbm": from_lightgbm(
            originals["lightgbm"], columns=s.columns, sample=s.X_train, name="wine lightgbm"
        ),
        "torch": from_torch(
            originals["torch"],
            torch.zeros(4, 13),
            columns=s.columns,
            sample=s.X_train,
            classes=om.WINE_CLASSES,
            name="wine mlp",
        ),  # its own order; the market maps by name
    }
    uploads = {k: lwm.publish(p, timeout=300) for k, p in packages.items()}
    assert {k: u.status for k, u in uploads.items()} == dict.fromkeys(packages, "published")
    assert {u.final.artifact_format for u in uploads.values()} == {"onnx"}

    predictions = _submit_and_check(
        lwm, s, {u.learnware for u in uploads.values()}, task="classification", tmp_path=tmp_path
    )
    assert predictions.shape == (len(s.X_test),) and set(predictions) <= set(om.WINE_CLASSES)
    assert float(np.mean(predictions == s.y_test)) > 0.8

    X = _held_out(s)
    for key in ("sklearn", "lightgbm"):
        got = Predictor.from_path(lwm.download(uploads[key].learnware, dest=tmp_path).path)
        assert list(got.predict(X)) == list(originals[key].predict(X))
        assert_allclose(got.predict_proba(X), originals[key].predict_proba(X), atol=1e-5)
    got = Predictor.from_path(lwm.download(uploads["torch"].learnware, dest=tmp_path).path)
    with torch.no_grad():
        logits = originals["torch"](torch.tensor(X, dtype=torch.float32)).double().numpy()
    assert list(got.predict(X)) == list(np.asarray(om.WINE_CLASSES)[logits.argmax(1)])


def test_xgboost_regressor_goes_round_trip(lwm, celery_worker, s3_storage, tmp_path):
    s, model = om.diamonds(), om.xgboost_regressor()
    upload = lwm.publish(
        from_xgboost(model, columns=s.columns, sample=s.X_train[:600], name="diamond price xgb"), timeout=300
    )
    assert upload.status == "published" and upload.final.artifact_format == "onnx"
    predictions = _submit_and_check(lwm, s, {upload.learnware}, task="regression", tmp_path=tmp_path)
    assert predictions.shape == (len(s.X_test),)
    X = _held_out(s)
    got = Predictor.from_path(lwm.download(upload.learnware, dest=tmp_path).path).predict(X)
    assert_allclose(got, model.predict(X), rtol=1e-4)
