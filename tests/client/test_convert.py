"""lwm_client.packages converters: each package predicts what the original model predicts.

The ONNX package is loaded by the client's ``Predictor`` (ONNX Runtime) and compared with the
original library's own predict/predict_proba on held-out rows the converter never saw.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from lwm_client.errors import PackageError
from lwm_client.packages import from_lightgbm, from_sklearn, from_torch, from_xgboost, package_check
from lwm_client.packages.convert import sklearn_to_onnx, verify
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.support import onnx_models as om

pytest.importorskip("skl2onnx")


def _held_out(split: om.Split) -> np.ndarray:
    return split.X_test.astype(np.float32).astype(np.float64)  # the market feeds float32 rows


def _manifest(package: bytes) -> dict:
    return package_check(package).manifest


def test_sklearn_pipeline_package_predicts_as_the_pipeline():
    s, model = om.wine(), om.sklearn_pipeline()
    package = from_sklearn(
        model, columns=s.columns, sample=s.X_train, name="wine hgb", description="cultivars", tags=["wine"]
    )
    manifest = _manifest(package)
    assert (
        manifest["output"]["classes"] == sorted(om.WINE_CLASSES) and manifest["input"]["columns"] == s.columns
    )
    assert manifest["tags"] == ["wine"] and package_check(package, deep=True).artifact_format == "onnx"
    X = _held_out(s)
    predictor = Predictor.from_bytes(package)
    assert list(predictor.predict(X)) == list(model.predict(X))
    assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)


def test_lightgbm_classifier_package_predicts_as_lightgbm():
    s, model = om.wine(), om.lightgbm_classifier()
    package = from_lightgbm(model, columns=s.columns, sample=s.X_train, name="wine lgbm")
    X = _held_out(s)
    predictor = Predictor.from_bytes(package)
    assert list(predictor.predict(X)) == list(model.predict(X))
    assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)


def test_xgboost_regressor_package_predicts_as_xgboost():
    s, model = om.diamonds(), om.xgboost_regressor()
    package = from_xgboost(model, columns=s.columns, sample=s.X_train[:500], name="diamond price")
    assert _manifest(package)["task"] == "regression" and _manifest(package)["output"] == {"dim": 1}
    X = _held_out(s)
    assert_allclose(Predictor.from_bytes(package).predict(X), model.predict(X), rtol=1e-4)


def test_torch_mlp_package_predicts_as_the_module():
    import torch

    s, module = om.wine(), om.WineMLP.fit()
    package = from_torch(
        module,
        torch.zeros(4, 13),
        columns=s.columns,
        sample=s.X_train,
        classes=om.WINE_CLASSES,
        name="wine mlp",
    )
    X = _held_out(s)
    with torch.no_grad():
        logits = module(torch.tensor(X, dtype=torch.float32)).double().numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    predictor = Predictor.from_bytes(package)
    assert list(predictor.predict(X)) == list(np.asarray(om.WINE_CLASSES)[logits.argmax(1)])
    assert_allclose(predictor.predict_proba(X), probs, atol=1e-5)


class Squash(BaseEstimator, TransformerMixin):
    """A transformer skl2onnx knows nothing about."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.tanh(X)


def test_a_non_convertible_estimator_is_named():
    s = om.wine()
    model = make_pipeline(StandardScaler(), Squash(), om.sklearn_pipeline()[-1]).fit(s.X_train, s.y_train)
    with pytest.raises(PackageError) as err:
        from_sklearn(model, columns=s.columns, sample=s.X_train, name="squashed")
    assert err.value.code == "package:user:not-convertible"
    assert err.value.details == {"estimator": f"{__name__}.Squash"} and "Squash" in err.value.message


def test_predictions_that_differ_from_the_original_are_refused_before_packaging():
    s, model = om.wine(), om.sklearn_pipeline()
    onnx_bytes = sklearn_to_onnx(model, len(s.columns))
    swapped = {"barbera": "barolo", "barolo": "barbera", "grignolino": "grignolino"}
    with pytest.raises(PackageError) as err:
        verify(
            onnx_bytes,
            s.X_test,
            predict=lambda X: np.array([swapped[v] for v in model.predict(X)]),
            classes=list(model.classes_),
        )
    assert err.value.code == "package:user:conversion-mismatch"
    with pytest.raises(PackageError) as err:
        verify(
            onnx_bytes,
            s.X_test,
            predict=model.predict,
            predict_proba=lambda X: model.predict_proba(X) * 0.99,
            classes=list(model.classes_),
        )
    assert err.value.code == "package:user:conversion-mismatch" and err.value.details["max_abs_diff"] > 1e-5


def test_class_names_other_than_the_labels_need_positional_labels():
    s, model = om.wine(), om.sklearn_pipeline()  # fitted on names: they are its labels
    with pytest.raises(PackageError) as err:
        from_sklearn(model, columns=s.columns, sample=s.X_train, name="renamed", classes=["a", "b", "c"])
    assert err.value.code == "package:user:classes"
    lgbm = om.lightgbm_classifier()
    package = from_lightgbm(
        lgbm, columns=s.columns, sample=s.X_train, name="renamed", classes=sorted(om.WINE_CLASSES)
    )
    assert yaml.safe_load(package_check(package).manifest["name"]) == "renamed"


def test_lightgbm_double_thresholds_decide_as_in_lightgbm_on_float32_rows():
    """LightGBM splits at data values (doubles); rows equal to a split value must go the same way in ONNX."""
    import lightgbm

    s = om.diamonds()
    model = lightgbm.LGBMRegressor(n_estimators=60, num_leaves=15, random_state=0, n_jobs=1, verbose=-1).fit(
        s.X_train, s.y_train
    )
    package = from_lightgbm(model, columns=s.columns, sample=s.X_train[:300], name="diamond lgbm")
    X = _held_out(s)
    assert_allclose(Predictor.from_bytes(package).predict(X), model.predict(X), rtol=1e-4)


def test_torch_image_model_package_takes_its_image_shape():
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[:64] / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8) in [0, 1]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 64, 10)
    ).eval()
    package = from_torch(
        net,
        torch.zeros(2, 1, 8, 8),
        shape=[1, 8, 8],
        sample=images,
        classes=[str(i) for i in range(10)],
        name="digits conv",
    )
    manifest = package_check(package).manifest
    assert manifest["modality"] == "image" and manifest["input"] == {"shape": [1, 8, 8]}
    assert package_check(package).sample_names == ["sample.npz"]
    with torch.no_grad():
        logits = net(torch.from_numpy(images)).double().numpy()
    assert list(Predictor.from_bytes(package).predict(images)) == [str(i) for i in logits.argmax(1)]


def test_a_scaler_before_trees_is_folded_into_the_thresholds_exactly():
    """In float32 a scaled value next to a split can cross it; folded, every held-out diamond matches."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    s = om.diamonds()
    model = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=50, random_state=0)).fit(
        s.X_train, s.y_train
    )
    package = from_sklearn(model, columns=s.columns, sample=s.X_train[:300], name="diamond hgb")
    X = _held_out(s)
    assert_allclose(Predictor.from_bytes(package).predict(X), model.predict(X), rtol=1e-4)


def test_xgboost_classifier_on_positions_takes_class_names():
    import xgboost

    s = om.wine()
    y = np.array([om.WINE_CLASSES.index(v) for v in s.y_train])  # XGBoost wants labels 0..k-1
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0).fit(s.X_train, y)
    package = from_xgboost(
        model, columns=s.columns, sample=s.X_train, name="wine xgb", classes=om.WINE_CLASSES
    )
    assert _manifest(package)["output"]["classes"] == om.WINE_CLASSES
    X = _held_out(s)
    predictor = Predictor.from_bytes(package)
    assert list(predictor.predict(X)) == list(np.asarray(om.WINE_CLASSES)[model.predict(X)])
    assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scaler_before_a_random_forest_is_folded_exactly(seed):
    from sklearn.ensemble import RandomForestClassifier

    s = om.diamonds()
    labels = np.where(s.y_train > 3000, "dear", "cheap")
    model = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=30, max_depth=8, random_state=seed, n_jobs=1)
    )
    model.fit(s.X_train, labels)
    package = from_sklearn(model, columns=s.columns, sample=s.X_train[:300], name="dear or cheap")
    X = _held_out(s)
    predictor = Predictor.from_bytes(package)
    assert list(predictor.predict(X)) == list(model.predict(X))
    assert_allclose(predictor.predict_proba(X), model.predict_proba(X), atol=1e-5)
