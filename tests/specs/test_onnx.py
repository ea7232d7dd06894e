"""ONNX artifacts: the static rules (specs.packaging.onnx_checks) and the runner (specs.packaging.onnx_run).

Classifier outputs are compared with scikit-learn's own predict/predict_proba on real rows
(wine, breast cancer): the runner maps ONNX-ML outputs (ZipMap or tensor probabilities, label
tensors) onto the manifest's classes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from specs.packaging import InvalidPackageError, package_inspect
from specs.packaging.onnx_checks import STANDARD_DOMAINS, check_onnx, input_width
from specs.packaging.onnx_run import load_onnx
from tests.support.onnx_packages import ONNX_FAILURES, build_onnx_table_package, check_model_ok, onnx_linear

skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402

WINE_CLASSES = ["barolo", "grignolino", "barbera"]


def _manifest(columns: int, classes: list[str] | None = None, dim: int = 1) -> dict:
    return {
        "name": "m",
        "kind": "model",
        "modality": "table",
        "task": "classification" if classes else "regression",
        "input": {"columns": [f"c{i}" for i in range(columns)]},
        "output": {"classes": classes, "dim": len(classes)} if classes else {"dim": dim},
    }


def _wine():
    X, y = load_wine(return_X_y=True)
    return X, np.asarray(WINE_CLASSES)[y]


def _convert(model, d: int, **options) -> bytes:
    return skl2onnx.convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, d]))],
        options={id(model): options} if options else None,
    ).SerializeToString()


@pytest.mark.parametrize(
    "case", sorted(k for k, (_, code) in ONNX_FAILURES.items() if code.startswith("upload:"))
)
def test_each_static_rule_refuses_with_its_code_naming_the_file(case):
    build, code = ONNX_FAILURES[case]
    with pytest.raises(InvalidPackageError) as err:
        package_inspect(build())
    assert err.value.code == code
    assert err.value.details == {"file": "model.onnx"} and err.value.message


def test_a_plain_linear_graph_is_accepted_and_runs_as_numpy_computes_it():
    raw = onnx_linear(seed=3)
    check_model_ok(raw)
    package = package_inspect(build_onnx_table_package(raw))
    assert package.artifact_format == "onnx" and package.artifact == {"model.onnx": raw}
    from onnx import load_model_from_string, numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in load_model_from_string(raw).graph.initializer}
    X = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    assert_allclose(load_onnx(raw)(X), X @ weights["W"] + weights["b"], rtol=1e-6, atol=1e-6)


def test_zipmap_probabilities_are_mapped_onto_the_manifest_classes_in_order():
    X, y = _wine()
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    raw = _convert(forest, X.shape[1])  # skl2onnx's default: label + ZipMap probabilities
    sig = check_onnx("model.onnx", raw, _manifest(X.shape[1], sorted(WINE_CLASSES)))
    assert sig.labels == tuple(sorted(WINE_CLASSES)) and any(o[1] == "seq_map" for o in sig.outputs)
    X32 = X.astype(np.float32)
    got = load_onnx(raw)(X32)
    assert got.shape == (len(X), 3)
    assert_allclose(got, forest.predict_proba(X32.astype(np.float64)), atol=1e-5)
    assert (np.asarray(forest.classes_)[got.argmax(axis=1)] == forest.predict(X32.astype(np.float64))).all()


def test_labels_in_another_order_than_the_manifest_are_refused():
    X, y = _wine()
    raw = _convert(LogisticRegression(max_iter=20000).fit(X, y), X.shape[1], zipmap=False)
    with pytest.raises(InvalidPackageError) as err:
        check_onnx(
            "model.onnx", raw, _manifest(X.shape[1], WINE_CLASSES)
        )  # classes_ are sorted: barbera first
    assert err.value.code == "upload:user:onnx-classes"
    with pytest.raises(InvalidPackageError) as err:
        check_onnx("model.onnx", raw, _manifest(X.shape[1], sorted(WINE_CLASSES)[:2]))
    assert err.value.code == "upload:user:onnx-classes"


def test_integer_labels_0_to_k_minus_1_are_positions_of_any_class_names():
    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    raw = _convert(model, X.shape[1], zipmap=False)
    check_onnx("model.onnx", raw, _manifest(X.shape[1], ["malignant", "benign"]))
    X32 = X.astype(np.float32)
    assert_allclose(load_onnx(raw)(X32), model.predict_proba(X32.astype(np.float64)), atol=1e-5)


def test_a_label_only_classifier_gives_class_positions():
    import onnx

    X, y = _wine()
    model = LogisticRegression(max_iter=20000).fit(X, y)
    proto = onnx.load_model_from_string(_convert(model, X.shape[1], zipmap=False))
    keep = [o for o in proto.graph.output if "label" in o.name]
    assert len(keep) == 1
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    raw = proto.SerializeToString()
    X32 = X.astype(np.float32)
    positions = load_onnx(raw)(X32)
    want = np.searchsorted(model.classes_, model.predict(X32.astype(np.float64)))
    assert positions.dtype == np.int64 and (positions == want).all()


def test_regression_width_must_match_output_dim():
    with pytest.raises(InvalidPackageError) as err:
        check_onnx("model.onnx", onnx_linear(k=2), _manifest(3, dim=1))
    assert err.value.code == "upload:user:onnx-output"
    check_onnx("model.onnx", onnx_linear(k=2), _manifest(3, dim=2))


def test_only_the_standard_domains_are_allowed():
    assert STANDARD_DOMAINS == ("", "ai.onnx", "ai.onnx.ml")
    with pytest.raises(InvalidPackageError) as err:
        check_onnx("model.onnx", onnx_linear(domain="com.microsoft"), _manifest(3, ["a", "b"]))
    assert err.value.code == "upload:user:onnx-domain"


def test_the_runner_starts_no_thread(tmp_path):
    """ONNX Runtime with our session options adds no thread to the process (the sandbox's budget is one)."""
    X, y = _wine()
    raw = _convert(RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y), X.shape[1])
    (tmp_path / "model.onnx").write_bytes(raw)
    script = (
        "import os, sys, numpy as np\n"
        "from specs.packaging.onnx_run import load_onnx\n"
        "import onnxruntime\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "model = load_onnx(open(sys.argv[1], 'rb').read())\n"
        "model(np.random.default_rng(0).normal(size=(20000, 13)).astype(np.float32))\n"
        "print(before, len(os.listdir('/proc/self/task')))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model.onnx")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout.split()
    before, after = map(int, out)
    assert after == before


def _image_graph(shape: list[int], k: int = 2) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    d = int(np.prod(shape))
    W = numpy_helper.from_array(np.random.default_rng(0).normal(size=(d, k)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["y"])],
        "image",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, k])],
        initializer=[W],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_an_image_model_must_take_the_manifest_shape():
    manifest = {
        "kind": "model",
        "modality": "image",
        "task": "classification",
        "input": {"shape": [1, 8, 8]},
        "output": {"classes": ["a", "b"], "dim": 2},
    }
    check_onnx("model.onnx", _image_graph([1, 8, 8]), manifest)
    for wrong in ([1, 8, 9], [3, 8, 8]):
        with pytest.raises(InvalidPackageError) as err:
            check_onnx("model.onnx", _image_graph(wrong), manifest)
        assert err.value.code == "upload:user:onnx-input" and "input.shape" in err.value.message


def test_a_text_head_takes_384_unless_it_names_a_base_whose_width_the_market_checks():
    manifest = {
        "kind": "model",
        "modality": "text",
        "task": "classification",
        "input": {},
        "output": {"classes": ["a", "b"], "dim": 2},
    }
    check_onnx("model.onnx", onnx_linear(384, 2), manifest)
    with pytest.raises(InvalidPackageError) as err:
        check_onnx("model.onnx", onnx_linear(32, 2), manifest)
    assert err.value.code == "upload:user:onnx-input" and "(n, 384)" in err.value.message
    with pytest.raises(InvalidPackageError) as err:  # naming the MiniLM is naming the default space
        check_onnx("model.onnx", onnx_linear(32, 2), {**manifest, "base_model": "all-MiniLM-L6-v2"})
    assert err.value.code == "upload:user:onnx-input"
    # On a published base the width is its hidden size, known to the market: the worker compares it.
    check_onnx("model.onnx", onnx_linear(32, 2), {**manifest, "base_model": "alice-tiny-bert"})
    assert input_width(onnx_linear(32, 2)) == 32
