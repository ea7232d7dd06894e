"""ONNX graphs built node by node (``onnx.helper``) for the ONNX rules of ``docs/package-format.md``.

``onnx_linear`` is a small linear table model ``x @ W + b`` (float32, batch axis free); each
variant breaks one rule: a custom domain, an unknown operator, external weights, a wrong input
width, a wrong number of classes, NaN outputs, an allocation far beyond the sandbox's memory.
``ONNX_FAILURES`` maps a case to (package builder, the code the market must answer with).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]


def onnx_linear(
    d: int = 3,
    k: int = 2,
    *,
    seed: int = 0,
    width: int | None = None,
    outputs: int | None = None,
    domain: str | None = None,
    unknown_op: bool = False,
    external: bool = False,
    nan: bool = False,
    hog: bool = False,
) -> bytes:
    """ONNX bytes of ``x @ W + b``; the keyword arguments each break one rule (see the module doc)."""
    rng = np.random.default_rng(seed)
    d_in, k_out = width or d, outputs or k
    W = numpy_helper.from_array(rng.normal(size=(d_in, k_out)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.full(k_out, np.nan if nan else 0.1, dtype=np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["scores"])]
    inits = [W, b]
    opsets = list(OPSETS)
    last = "scores"
    if domain is not None:
        nodes.append(helper.make_node("Boost", [last], ["boosted"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
        last = "boosted"
    if unknown_op:
        nodes.append(helper.make_node("FastGeluPlus", [last], ["gelu"]))
        last = "gelu"
    if hog:  # a (200000, 100000) float tensor: 80 GB, far beyond any sandbox limit
        inits.append(numpy_helper.from_array(np.array([200_000, 100_000], dtype=np.int64), "huge"))
        inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"))
        nodes += [
            helper.make_node("ReduceMax", ["x"], ["xmax"], keepdims=0),
            helper.make_node("Expand", ["xmax", "huge"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", [last, "nothing"], ["hogged"]),
        ]
        last = "hogged"
    nodes.append(helper.make_node("Identity", [last], ["output"]))
    if external:  # W's bytes "live" in weights.bin next to the model
        W.ClearField("raw_data")
        W.data_location = TensorProto.EXTERNAL
        entry = W.external_data.add()
        entry.key, entry.value = "location", "weights.bin"
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d_in])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, k_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=opsets, producer_name="lwm-tests")
    model.ir_version = 8
    return model.SerializeToString()


def build_onnx_table_package(model: bytes, **kwargs) -> bytes:
    """``build_table_model_package`` with ``model.onnx`` as its artifact."""
    from tests.support.packages import build_table_model_package

    return build_table_model_package(model=model, model_name="model.onnx", **kwargs)


def _case(name: str, **broken) -> Callable[[], bytes]:
    return lambda: build_onnx_table_package(onnx_linear(**broken), name=f"onnx-{name}")


ONNX_FAILURES: dict[str, tuple[Callable[[], bytes], str]] = {
    "onnx-domain": (_case("domain", domain="com.example.boost"), "upload:user:onnx-domain"),
    "onnx-custom-op": (_case("custom-op", unknown_op=True), "upload:user:onnx-custom-op"),
    "onnx-external-data": (_case("external", external=True), "upload:user:onnx-external-data"),
    "onnx-input-width": (_case("width", width=5), "upload:user:onnx-input"),
    "onnx-classes": (_case("classes", outputs=3), "upload:user:onnx-classes"),
    "onnx-invalid": (
        lambda: build_onnx_table_package(b"\x08\x07garbage-not-onnx", name="onnx-garbage"),
        "upload:user:onnx-invalid",
    ),
    "onnx-nan": (_case("nan", nan=True), "publish:user:output-not-finite"),
    "onnx-memory": (_case("hog", hog=True), "publish:user:memory-limit"),
}


def check_model_ok(raw: bytes) -> None:
    """The ONNX checker accepts ``raw`` (used by the tests of the valid graphs)."""
    onnx.checker.check_model(onnx.load_model_from_string(raw))
