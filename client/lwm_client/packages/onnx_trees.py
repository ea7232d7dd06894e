"""Tree models in ONNX that decide exactly as the library they came from (used by :mod:`.convert`).

Converters store split thresholds as float32 while scikit-learn and LightGBM compare in double (often at
data values themselves), and a float32 scaler moves values across splits. These helpers read the
original thresholds and rewrite the ONNX ones so that every float32 input row takes the same branch:
:func:`floor_thresholds` (trees on raw columns), :func:`raw_thresholds` (a StandardScaler folded into
the trees) and :func:`cast_tree_scores` (double-input graphs ONNX Runtime can run).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sklearn_parts(model: Any) -> list[Any]:
    """The estimator and every estimator nested in it (pipelines, column transformers, unions)."""
    parts = [model]
    for _, step in getattr(model, "steps", []) or []:
        parts += sklearn_parts(step)
    for entry in getattr(model, "transformers", []) or []:
        if len(entry) >= 2 and not isinstance(entry[1], str):
            parts += sklearn_parts(entry[1])
    for _, step in getattr(model, "transformer_list", []) or []:
        parts += sklearn_parts(step)
    return parts


TREE_SCORES = {
    "TreeEnsembleRegressor": (0,),
    "TreeEnsembleClassifier": (1,),
}  # outputs ONNX Runtime makes float


def cast_tree_scores(onnx_bytes: bytes) -> bytes:
    """skl2onnx declares double scores for trees fed doubles, but ONNX Runtime's tree kernels emit float
    scores whatever the input: cast them to the declared double so that the graph runs."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_model_from_string(onnx_bytes)
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        for i in TREE_SCORES.get(node.op_type, ()) if node.domain == "ai.onnx.ml" else ():
            declared = node.output[i]
            node.output[i] = f"{declared}_float"
            nodes.append(
                helper.make_node(
                    "Cast", [node.output[i]], [declared], to=TensorProto.DOUBLE, name=f"{declared}_to_double"
                )
            )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


def sklearn_splits(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(feature, threshold) of every split of the tree models inside a scikit-learn estimator or pipeline,
    thresholds as the doubles scikit-learn compares with."""
    feats: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for part in sklearn_parts(model):
        trees = [part] if hasattr(part, "tree_") else list(np.ravel(getattr(part, "estimators_", [])))
        for tree in trees:
            if hasattr(tree, "tree_"):
                inner = tree.tree_.children_left != -1
                feats.append(tree.tree_.feature[inner])
                values.append(tree.tree_.threshold[inner])
        for iteration in getattr(part, "_predictors", []) or []:  # HistGradientBoosting*
            for predictor in iteration:
                inner = predictor.nodes["is_leaf"] == 0
                feats.append(predictor.nodes["feature_idx"][inner])
                values.append(predictor.nodes["num_threshold"][inner])
    if not values:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(feats).astype(np.int64), np.concatenate(values).astype(np.float64)


def sklearn_thresholds(model: Any) -> np.ndarray:
    return sklearn_splits(model)[1]


def raw_thresholds(t: np.ndarray, mean: np.ndarray, scale: np.ndarray, cast32: bool) -> np.ndarray:
    """For each standardised threshold t (of a feature with ``mean``/``scale``), the largest float32 x with
    ``z(x) <= t``, z being scikit-learn's own arithmetic: ``(x - mean) / scale`` in double (then float32 for
    its classic trees). z is monotone in x, so ``x <= that`` decides exactly as the pipeline does."""

    def z(x: np.ndarray) -> np.ndarray:
        out = (x.astype(np.float64) - mean) / scale
        return out.astype(np.float32).astype(np.float64) if cast32 else out

    c = (t * scale + mean).astype(np.float32)
    for _ in range(64):
        high = z(c) > t
        if not high.any():
            break
        c[high] = np.nextafter(c[high], np.float32(-np.inf))
    for _ in range(64):
        up = np.nextafter(c, np.float32(np.inf))
        fits = z(up) <= t
        if not fits.any():
            break
        c[fits] = up[fits]
    return c


def lightgbm_thresholds(model: Any) -> np.ndarray:
    """Every ``<=`` split threshold of a LightGBM model, as the doubles LightGBM compares with."""
    out: list[float] = []
    stack = [info["tree_structure"] for info in model.booster_.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node.get("decision_type") == "<=":
                out.append(float(node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    return np.asarray(out, dtype=np.float64)


def floor_thresholds(onnx_bytes: bytes, thresholds: np.ndarray) -> bytes:
    """Make float32 ``BRANCH_LEQ`` tree thresholds decide as the original double ones do.

    A converter stores a double threshold t as the nearest float32 r; when r > t, a float32 input
    x = r goes left in ONNX but right in the original (x > t). The largest float32 <= t gives
    ``x <= it`` exactly when ``x <= t``, for every float32 x. Thresholds are matched by value;
    a float32 value two thresholds round to from both sides is left as it is."""
    import onnx

    t = np.unique(thresholds)
    r = t.astype(np.float32)
    floor = np.where(r.astype(np.float64) > t, np.nextafter(r, np.float32(-np.inf)), r)
    mapping: dict[float, float | None] = {}
    for near, low in zip(r.tolist(), floor.tolist(), strict=True):
        mapping[near] = low if mapping.get(near, low) == low else None
    model = onnx.load_model_from_string(onnx_bytes)
    for node in model.graph.node:
        if node.op_type not in ("TreeEnsembleRegressor", "TreeEnsembleClassifier"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs or "nodes_modes" not in attrs:
            continue
        modes, values = list(attrs["nodes_modes"].strings), list(attrs["nodes_values"].floats)
        fixed = [mapping.get(v) or v if m == b"BRANCH_LEQ" else v for m, v in zip(modes, values, strict=True)]
        del attrs["nodes_values"].floats[:]
        attrs["nodes_values"].floats.extend(fixed)
    return model.SerializeToString()
