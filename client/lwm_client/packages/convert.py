"""Convert fitted scikit-learn, LightGBM, XGBoost and PyTorch models to ONNX learnware packages.

``from_sklearn`` / ``from_lightgbm`` / ``from_xgboost`` (``from_torch``: ``convert_torch``) each convert the
model (skl2onnx, onnxmltools, ``torch.onnx``: optional extras, ``pip install './client[sklearn]'``
etc.), run the ONNX model with ONNX Runtime on a probe batch and compare it with the original
(labels identical, probabilities / values within ``atol=1e-5`` plus ``1e-5`` relative), check the
package as the server's upload does, and return the package zip, ready for ``client.publish``.
A model that cannot be converted raises :class:`PackageError` ``package:user:not-convertible``
naming the estimator; a converted model that disagrees with the original raises
``package:user:conversion-mismatch`` with the largest difference.

Inputs are float tables in ``columns`` order (images: ``(n, C, H, W)`` for ``from_torch``).
Tree models are converted with double-precision inputs where the converter supports it
(scikit-learn), so their split thresholds compare exactly as in the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from lwm_client.errors import PackageError
from lwm_client.packages.build import build_package, csv_sample
from lwm_client.packages.check import package_check
from lwm_client.packages.onnx_trees import (
    TREE_SCORES,
    cast_tree_scores,
    floor_thresholds,
    lightgbm_thresholds,
    raw_thresholds,
    sklearn_parts,
    sklearn_splits,
    sklearn_thresholds,
)

PROBE_ROWS = 256
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # ai.onnx.ml 3: tree thresholds as double tensors
ATOL = RTOL = 1e-5


def not_convertible(what: str, exc: BaseException | None = None) -> PackageError:
    reason = f": {str(exc).splitlines()[0][:300]}" if exc is not None and str(exc) else ""
    return PackageError(
        f"{what} cannot be converted to ONNX{reason}",
        code="package:user:not-convertible",
        details={"estimator": what},
    )


def _need(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PackageError(
            f"{module} is not installed: pip install './client[{extra}]'",
            code="package:user:missing-extra",
            details={"module": module},
        ) from None


def qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


def _unsupported_sklearn(model: Any) -> str | None:
    from skl2onnx._supported_operators import sklearn_operator_name_map

    composite = ("Pipeline", "ColumnTransformer", "FeatureUnion")
    for part in sklearn_parts(model):
        if type(part).__name__ not in composite and type(part) not in sklearn_operator_name_map:
            return qualname(part)
    return None


def _is_classifier(model: Any) -> bool:
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def _probe(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(X, dtype=np.float64)[:PROBE_ROWS])


def verify(
    onnx_bytes: bytes,
    X: np.ndarray,
    *,
    predict: Callable[[np.ndarray], np.ndarray],
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
    classes: Sequence[Any] | None = None,
) -> None:
    """Compare the ONNX model with the original on rows X (as float32 values, what the market feeds).

    Classifiers: labels identical and probabilities within tolerance; otherwise values within tolerance.

    Raises
    ------
    PackageError
        ``package:user:conversion-mismatch``.
    """
    from specs.packaging.onnx_run import load_onnx

    rows = np.asarray(X, dtype=np.float32).astype(np.float64)
    got = np.asarray(load_onnx(onnx_bytes)(rows), dtype=np.float64)
    if classes is not None:
        want_labels = np.asarray(predict(rows))
        positions = {str(c): i for i, c in enumerate(classes)}
        want_idx = np.array([positions[str(v)] for v in want_labels.tolist()])
        got_idx = got.astype(np.int64) if got.ndim == 1 else got.argmax(axis=1)
        if not np.array_equal(want_idx, got_idx):
            bad = int(np.flatnonzero(want_idx != got_idx)[0])
            raise PackageError(
                f"the ONNX model predicts class {got_idx[bad]} for probe row {bad}, the original "
                f"{want_idx[bad]}",
                code="package:user:conversion-mismatch",
                details={"row": bad},
            )
        if predict_proba is None or got.ndim == 1:
            return
        want = np.asarray(predict_proba(rows), dtype=np.float64)
    else:
        want = np.asarray(predict(rows), dtype=np.float64).reshape(len(rows), -1)
        got = got.reshape(len(rows), -1)
    if want.shape != got.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        diff = float(np.max(np.abs(got - want))) if want.shape == got.shape else float("inf")
        raise PackageError(
            f"the ONNX model's outputs differ from the original's by up to {diff:.3g} on the probe batch "
            f"(shapes {got.shape} vs {want.shape}; tolerance {ATOL})",
            code="package:user:conversion-mismatch",
            details={"max_abs_diff": diff},
        )


def _table_package(
    onnx_bytes: bytes,
    *,
    columns: Sequence[str],
    classes: Sequence[Any] | None,
    sample: np.ndarray | None,
    rkme: Any,
    name: str,
    description: str,
    license: str,
    manifest: Mapping[str, Any],
) -> bytes:
    doc: dict[str, Any] = {
        "name": name,
        "description": description,
        "kind": "model",
        "modality": "table",
        "task": "classification" if classes is not None else "regression",
        "input": {"columns": [str(c) for c in columns]},
        "output": {"classes": [str(c) for c in classes]} if classes is not None else {"dim": 1},
        "license": license,
        **manifest,
    }
    files = (
        None
        if sample is None
        else {"sample.csv": csv_sample([str(c) for c in columns], np.asarray(sample, dtype=np.float64))}
    )
    package = build_package(manifest=doc, model=onnx_bytes, model_format="onnx", rkme=rkme, sample=files)
    package_check(package)
    return package


def _folded_scaler(model: Any, n_features: int, skl2onnx: Any) -> bytes | None:
    """A pipeline StandardScaler -> tree model as ONNX trees on the raw columns, every threshold moved back
    through the scaler (:func:`raw_thresholds`): exact, where a float32 scaler before float32 trees is not.
    None when the pipeline is not of that form."""
    from skl2onnx.common.data_types import FloatTensorType

    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]).__name__ != "StandardScaler":
        return None
    scaler, est = steps[0][1], steps[1][1]
    f64, t64 = sklearn_splits(est)
    if not len(t64):
        return None
    options = {id(est): {"zipmap": False}} if _is_classifier(est) else None
    raw = skl2onnx.convert_sklearn(
        est,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
    ).SerializeToString()
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n_features)
    scale = scaler.scale_ if scaler.with_std else np.ones(n_features)
    # The double threshold of each ONNX split: scikit-learn's classic trees by (tree, node) id (skl2onnx
    # writes
    # tree i of estimators_, node ids as in tree_, thresholds it may round either way); HistGradientBoosting
    # by
    # (feature, float32 value), which is what skl2onnx stores for it.
    trees = [est] if hasattr(est, "tree_") else list(np.ravel(getattr(est, "estimators_", [])))
    by_id = {
        (i, int(n)): float(tree.tree_.threshold[n])
        for i, tree in enumerate(trees)
        if hasattr(tree, "tree_")
        for n in np.flatnonzero(tree.tree_.children_left != -1)
    }
    exact = {(int(f), float(np.float32(t))): float(t) for f, t in zip(f64, t64, strict=True)}
    import onnx

    proto = onnx.load_model_from_string(raw)
    for node in proto.graph.node:
        if node.op_type not in TREE_SCORES:
            continue
        attrs = {a.name: a for a in node.attribute}
        modes, feats = list(attrs["nodes_modes"].strings), np.asarray(attrs["nodes_featureids"].ints)
        values = np.asarray(attrs["nodes_values"].floats, dtype=np.float64)
        split = np.array([m == b"BRANCH_LEQ" for m in modes])
        ids = zip(attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints, strict=True)
        keys = [(int(i), int(n)) for (i, n), m in zip(ids, split, strict=True) if m]
        t = np.array(
            [
                by_id[k] if by_id else exact.get((int(f), v), v)
                for k, f, v in zip(keys, feats[split], values[split], strict=True)
            ]
        )
        moved = values.copy()
        moved[split] = raw_thresholds(
            t, mean[feats[split]], scale[feats[split]], cast32=not hasattr(est, "_predictors")
        )
        del attrs["nodes_values"].floats[:]
        attrs["nodes_values"].floats.extend(moved.tolist())
    return proto.SerializeToString()


def sklearn_candidates(model: Any, n_features: int) -> Iterator[bytes]:
    """ONNX forms of a fitted scikit-learn estimator or pipeline, most faithful first.

    0. a StandardScaler -> trees pipeline folded into trees on the raw columns (:func:`_folded_scaler`);
    1. float inputs with every tree threshold floored to float32 (:func:`floor_thresholds`): exact for
       trees on the raw columns, which scikit-learn itself compares in float32 or at data values;
    2. double inputs (ONNX Runtime's tree kernels still compare in float32): closer when a scaler or
       another transform comes before the trees, as float32 arithmetic would move the scaled values.
    A form ONNX Runtime cannot run is skipped; none at all raises ``package:user:not-convertible``."""
    skl2onnx = _need("skl2onnx", "sklearn")
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    from specs.packaging.onnx_run import load_onnx

    missing = _unsupported_sklearn(model)
    if missing:
        raise not_convertible(missing)
    options = {id(model): {"zipmap": False}} if _is_classifier(model) else None  # ORT has no double ZipMap
    thresholds = sklearn_thresholds(model)
    produced, last = 0, None
    try:
        folded = _folded_scaler(model, n_features, skl2onnx)
    except Exception as exc:  # noqa: BLE001 - the plain forms below still apply
        folded, last = None, exc
    if folded is not None:
        produced += 1
        yield folded
    for tensor in (FloatTensorType, DoubleTensorType):
        try:
            raw = skl2onnx.convert_sklearn(
                model,
                initial_types=[("input", tensor([None, n_features]))],
                options=options,
                target_opset=TARGET_OPSET,
            ).SerializeToString()
            raw = floor_thresholds(raw, thresholds) if tensor is FloatTensorType else cast_tree_scores(raw)
            load_onnx(raw)
        except Exception as exc:  # noqa: BLE001 - skl2onnx and ONNX Runtime raise many types; the last one is reported
            last = exc
            continue
        produced += 1
        yield raw
    if not produced:
        raise not_convertible(qualname(model), last)


def sklearn_to_onnx(model: Any, n_features: int) -> bytes:
    """The first ONNX form of :func:`sklearn_candidates` (not verified against the model)."""
    return next(iter(sklearn_candidates(model, n_features)))


def from_sklearn(
    model: Any,
    *,
    columns: Sequence[str],
    sample: np.ndarray,
    name: str,
    classes: Sequence[Any] | None = None,
    description: str = "",
    license: str = "MIT",
    rkme: Any = None,
    **manifest: Any,
) -> bytes:
    """A learnware package (zip bytes) of a fitted scikit-learn estimator or pipeline.

    ``sample``: rows ``(n, len(columns))`` in raw units; the first 256 are the probe batch and the
    rows are sent as ``sample.csv`` (the market computes the RKME), unless ``rkme`` is given.
    ``classes``: the manifest's class names, one per ``model.classes_`` in that order (default: the
    labels themselves). Extra keyword arguments (``tags``, ``visibility``...) go into the manifest.
    """
    columns = list(columns)
    own = list(model.classes_) if _is_classifier(model) else None
    failure: PackageError | None = None
    for onnx_bytes in sklearn_candidates(model, len(columns)):  # the first form that predicts as the model
        try:
            verify(
                onnx_bytes,
                _probe(sample),
                predict=model.predict,
                predict_proba=getattr(model, "predict_proba", None) if own else None,
                classes=own,
            )
            break
        except PackageError as exc:
            failure = failure or exc  # the most faithful form's difference is the one reported
    else:
        raise failure or not_convertible(qualname(model))
    names = None if own is None else list(classes) if classes is not None else [str(c) for c in own]
    if names is not None and len(names) != len(own or []):
        raise PackageError(
            f"classes lists {len(names)} names; the model has {len(own or [])} classes",
            code="package:user:classes",
        )
    if names is not None and classes is not None:
        onnx_bytes = _relabel(onnx_bytes, own or [], names)
    return _table_package(
        onnx_bytes,
        columns=columns,
        classes=names,
        sample=None if rkme is not None else sample,
        rkme=rkme,
        name=name,
        description=description,
        license=license,
        manifest=manifest,
    )


def _relabel(onnx_bytes: bytes, own: list[Any], names: list[str]) -> bytes:
    """Give the graph's classifier labels the manifest's names, when they are not already
    the names or the positions 0..k-1 (the market checks the two agree)."""
    if [str(c) for c in own] == [str(c) for c in names] or own == list(range(len(own))):
        return onnx_bytes
    raise PackageError(
        f"the model's labels {own[:10]} differ from classes {names[:10]}: fit the model on the class "
        "names, or on 0..k-1, and pass classes= in the same order",
        code="package:user:classes",
    )


def _gbdt_to_onnx(convert: Callable[..., Any], model: Any, n_features: int, label: str) -> bytes:
    from onnxmltools.convert.common.data_types import FloatTensorType

    # LightGBM's converter adds a ZipMap unless told not to; XGBoost's has no such option (plain tensors).
    extra = (
        {"zipmap": False} if _is_classifier(model) and type(model).__module__.startswith("lightgbm") else {}
    )
    try:
        onx = convert(model, initial_types=[("input", FloatTensorType([None, n_features]))], **extra)
    except Exception as exc:  # noqa: BLE001 - onnxmltools raises many types
        raise not_convertible(label, exc) from None
    return onx.SerializeToString()


def _from_gbdt(
    kind: str,
    model: Any,
    columns: Sequence[str],
    sample: np.ndarray,
    name: str,
    classes: Sequence[Any] | None,
    description: str,
    license: str,
    rkme: Any,
    manifest: Mapping[str, Any],
) -> bytes:
    onnxmltools = _need("onnxmltools", kind)
    convert = onnxmltools.convert_lightgbm if kind == "lightgbm" else onnxmltools.convert_xgboost
    columns = list(columns)
    if type(model).__module__.split(".")[0] != kind:
        raise not_convertible(
            qualname(model), ValueError(f"from_{kind} takes a {kind} scikit-learn-API model")
        )
    onnx_bytes = _gbdt_to_onnx(convert, model, len(columns), qualname(model))
    if kind == "lightgbm":  # LightGBM splits on doubles; XGBoost's thresholds are float32 already
        onnx_bytes = floor_thresholds(onnx_bytes, lightgbm_thresholds(model))
    own = list(model.classes_) if _is_classifier(model) else None
    verify(
        onnx_bytes,
        _probe(sample),
        predict=model.predict,
        predict_proba=model.predict_proba if own else None,
        classes=own,
    )
    names = None if own is None else list(classes) if classes is not None else [str(c) for c in own]
    if names is not None:
        if len(names) != len(own or []):
            raise PackageError(
                f"classes lists {len(names)} names; the model has {len(own or [])} classes",
                code="package:user:classes",
            )
        onnx_bytes = _relabel(onnx_bytes, own or [], names)
    return _table_package(
        onnx_bytes,
        columns=columns,
        classes=names,
        sample=None if rkme is not None else sample,
        rkme=rkme,
        name=name,
        description=description,
        license=license,
        manifest=manifest,
    )


def from_lightgbm(
    model: Any,
    *,
    columns: Sequence[str],
    sample: np.ndarray,
    name: str,
    classes: Sequence[Any] | None = None,
    description: str = "",
    license: str = "MIT",
    rkme: Any = None,
    **manifest: Any,
) -> bytes:
    """A learnware package of a fitted ``lightgbm.LGBMClassifier`` / ``LGBMRegressor`` (see
    :func:`from_sklearn`)."""
    return _from_gbdt("lightgbm", model, columns, sample, name, classes, description, license, rkme, manifest)


def from_xgboost(
    model: Any,
    *,
    columns: Sequence[str],
    sample: np.ndarray,
    name: str,
    classes: Sequence[Any] | None = None,
    description: str = "",
    license: str = "MIT",
    rkme: Any = None,
    **manifest: Any,
) -> bytes:
    """A learnware package of a fitted ``xgboost.XGBClassifier`` / ``XGBRegressor`` (see
    :func:`from_sklearn`)."""
    return _from_gbdt("xgboost", model, columns, sample, name, classes, description, license, rkme, manifest)
