"""The demo's scikit-learn and LightGBM learnwares: ONNX packages built by the client's converters
that predict, in the client's Predictor, what the fitted models predict on the held-out user rows."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from demo import converted
from demo.seed import catalogue, import_client

pytest.importorskip("skl2onnx")
pytest.importorskip("lightgbm")


def test_each_converted_family_packages_as_onnx_and_predicts_as_its_model():
    lwm = import_client()
    from lwm_client.predict import Predictor

    domains = [d for d in catalogue() if d.family in converted.FAMILIES]
    assert sorted({d.family for d in domains}) == sorted(converted.FAMILIES) and len(domains) == 6
    for family in converted.FAMILIES:
        d = next(x for x in domains if x.family == family)
        package = converted.package(lwm, d, {"sample": True})
        checked = lwm.packages.package_check(package)
        assert checked.artifact_format == "onnx" and checked.manifest["tags"][-1] == "onnx"
        assert checked.sample_names == ["sample.csv"]
        model, X = converted.fit(d), d.X_user[:2000].astype(np.float32).astype(np.float64)
        predictor = Predictor.from_bytes(package)
        if d.task == "classification":
            assert list(predictor.predict(X)) == list(np.asarray(d.classes)[model.predict(X)])
            assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)
        else:
            assert_allclose(predictor.predict(X), model.predict(X), rtol=1e-4)
