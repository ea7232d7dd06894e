"""Static checks of an ONNX artifact (``model.onnx``) against its manifest, without running it.

The graph is parsed with the ``onnx`` protobuf library only (imported here, lazily
by :mod:`specs.packaging.package`); no ONNX Runtime session is created, so nothing
of the upload executes. What is refused, each with its ``upload:user:<reason>`` code:

* ``onnx-invalid``: not a parseable ONNX model, or the ONNX checker refuses it;
* ``onnx-domain``: an operator (or opset import, or local function) outside the standard
  domains ``""`` / ``ai.onnx`` and ``ai.onnx.ml``: such ops need a custom op library;
* ``onnx-custom-op``: an operator in a standard domain that ONNX does not define (it would
  need a custom op library registered in the runtime, which the market never does);
* ``onnx-external-data``: a tensor whose data lives in a file next to the model
  (weights must be inside ``model.onnx``);
* ``onnx-input``: not exactly one float tensor input, or one whose known shape does not
  match the manifest (table ``(n, len(input.columns))``; image ``(n, C, H, W)``;
  text heads ``(n, 384)``; a text head naming a ``base_model`` takes that base's hidden size,
  which the publishing worker checks against the base: :func:`input_width`);
* ``onnx-classes``: a classifier whose labels (ONNX-ML ``classlabels_*`` / ZipMap) are not
  the manifest's ``output.classes`` in order (or ``0..k-1``), or whose score width differs;
* ``onnx-output``: no numeric output usable for the task, or a known width other than
  ``output.dim``.

What needs a run (NaN outputs, allocations beyond the memory limit) is found by the
publishing sandbox, which reports ``publish:user:output-not-finite`` / ``memory-limit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from specs.packaging.choices import MINILM_NAMES
from specs.packaging.errors import reject

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
ONNX_NAME = "model.onnx"
TEXT_WIDTH = 384  # text heads take all-MiniLM-L6-v2 sentence embeddings
_FLOAT_TYPES = (1, 11)  # TensorProto.FLOAT, DOUBLE
_INT_TYPES = (6, 7)  # INT32, INT64
_STRING = 8
_EXTERNAL = 1  # TensorProto.EXTERNAL
LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


@dataclass(frozen=True)
class OnnxSignature:
    """What the market reads off an ONNX graph: its input, outputs and class labels (if any)."""

    input_name: str
    input_type: int
    input_shape: tuple[int | None, ...]  # None where the dimension is symbolic or unknown
    outputs: tuple[
        tuple[str, str, int, tuple[int | None, ...]], ...
    ]  # (name, "tensor"|"seq_map"|..., elem, shape)
    labels: tuple[int | str, ...] | None  # the classifier's labels in score-column order


def parse_model(name: str, data: bytes) -> Any:
    """The ``onnx.ModelProto`` of ``data`` (external data never loaded)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise reject("onnx-invalid", f"{name} is not an ONNX model: {exc}", name) from None
    if not model.HasField("graph") or not model.graph.node:
        raise reject("onnx-invalid", f"{name} is not an ONNX model (no graph)", name)
    return model


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph of If/Loop/Scan bodies, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def _check_domains(name: str, model: Any) -> None:
    import onnx.defs

    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise reject(
                "onnx-domain",
                f"{name} imports operator domain {opset.domain!r}; only the standard domains "
                "'' (ai.onnx) and 'ai.onnx.ml' are allowed (no custom op libraries)",
                name,
            )
    for function in model.functions:
        raise reject(
            "onnx-domain",
            f"{name} defines the local function {function.domain}:{function.name}; "
            "only standard ONNX operators are allowed",
            name,
        )
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise reject(
                    "onnx-domain",
                    f"{name}: node {node.name or node.op_type!r} uses operator {node.domain}:{node.op_type}; "
                    "only the standard domains '' (ai.onnx) and 'ai.onnx.ml' are allowed",
                    name,
                )
            if not onnx.defs.has(node.op_type, node.domain):
                raise reject(
                    "onnx-custom-op",
                    f"{name}: operator {node.op_type!r} is not a standard ONNX operator "
                    "(custom op libraries are not loaded)",
                    name,
                )


def _check_external(name: str, model: Any) -> None:
    for graph in _graphs(model.graph):
        for tensor in _tensors(graph):
            if tensor.data_location == _EXTERNAL or len(tensor.external_data):
                raise reject(
                    "onnx-external-data",
                    f"{name}: tensor {tensor.name!r} keeps its data in an external file; "
                    "save the model with all weights inside model.onnx",
                    name,
                )


def _shape(value_info: Any) -> tuple[int | None, ...]:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)


def _kind(value_info: Any) -> tuple[str, int]:
    t = value_info.type
    if t.HasField("tensor_type"):
        return "tensor", t.tensor_type.elem_type
    if t.HasField("sequence_type") and t.sequence_type.elem_type.HasField("map_type"):
        return "seq_map", t.sequence_type.elem_type.map_type.value_type.tensor_type.elem_type
    return "other", 0


def class_labels(model: Any) -> tuple[int | str, ...] | None:
    """The classifier's labels in the order of its score columns: from a ZipMap node if any,
    else from the (last) ONNX-ML classifier node's ``classlabels_*`` attribute."""
    found = None
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in LABEL_ATTRIBUTES and (attr.strings or attr.ints):
                labels = (
                    tuple(s.decode() for s in attr.strings)
                    if attr.strings
                    else tuple(int(i) for i in attr.ints)
                )
                if node.op_type == "ZipMap":
                    return labels
                found = labels
    return found


def signature(name: str, model: Any) -> OnnxSignature:
    """The graph's single float input, its outputs and class labels."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise reject(
            "onnx-input",
            f"{name} has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
            "the market feeds one float tensor",
            name,
        )
    kind, elem = _kind(inputs[0])
    if kind != "tensor" or elem not in _FLOAT_TYPES:
        raise reject("onnx-input", f"{name}: input {inputs[0].name!r} must be a float or double tensor", name)
    outputs = tuple((v.name, *_kind(v), _shape(v)) for v in model.graph.output)
    return OnnxSignature(inputs[0].name, elem, _shape(inputs[0]), outputs, class_labels(model))


def _expected_input(manifest: dict[str, Any]) -> tuple[int, ...] | None:
    if manifest["modality"] == "table":
        return (len(manifest["input"]["columns"]),)
    if manifest["modality"] == "image":
        return tuple(int(v) for v in manifest["input"]["shape"])
    if manifest.get("base_model", "") not in ("", *MINILM_NAMES):
        return None  # a published base's hidden size is the market's to know: checked when it publishes
    return (TEXT_WIDTH,)


def input_width(data: bytes) -> int | None:
    """The known width of an ONNX text head's single input ``(n, width)``; None where the graph
    leaves it symbolic or unknown (then the publishing probe finds a mismatch by running it)."""
    sig = signature(ONNX_NAME, parse_model(ONNX_NAME, data))
    shape = sig.input_shape
    return shape[1] if len(shape) == 2 else None


def _check_input(name: str, sig: OnnxSignature, manifest: dict[str, Any]) -> None:
    want = _expected_input(manifest)
    if want is None:
        return
    field = (
        "input.columns"
        if manifest["modality"] == "table"
        else "input.shape"
        if manifest["modality"] == "image"
        else "input"
    )
    got = sig.input_shape
    if not got:
        return  # no shape recorded: the publishing probe finds a mismatch
    if len(got) != len(want) + 1 or any(g is not None and g != w for g, w in zip(got[1:], want, strict=True)):
        shown = tuple("?" if g is None else g for g in got)
        raise reject(
            "onnx-input",
            f"{name}: input {sig.input_name!r} has shape {shown}; {field} needs (n, "
            f"{', '.join(map(str, want))})",
            name,
        )


def _numeric_outputs(sig: OnnxSignature) -> list[tuple[str, str, int, tuple[int | None, ...]]]:
    return [
        o
        for o in sig.outputs
        if (o[1] == "tensor" and o[2] in _FLOAT_TYPES + _INT_TYPES) or o[1] == "seq_map"
    ]


def _check_classes(name: str, sig: OnnxSignature, classes: list[str]) -> None:
    k = len(classes)
    if sig.labels is not None:
        labels = list(sig.labels)
        positions = all(isinstance(v, int) for v in labels) and labels == list(range(k))
        if not positions and [str(v) for v in labels] != [str(c) for c in classes]:
            raise reject(
                "onnx-classes",
                f"{name}: the classifier's labels are {labels[:20]}; output.classes must list the "
                f"same labels in the same order (or the labels be 0..{k - 1}), got {classes[:20]}",
                name,
            )
        return
    scores = [o for o in _numeric_outputs(sig) if o[1] == "tensor" and o[2] in _FLOAT_TYPES]
    if not scores and not [o for o in sig.outputs if o[1] == "tensor" and o[2] in _INT_TYPES]:
        raise reject("onnx-output", f"{name} has no float scores or integer labels output", name)
    for _, _, _, shape in scores[:1]:
        if len(shape) == 2 and shape[1] is not None and shape[1] != k:
            raise reject(
                "onnx-classes",
                f"{name} outputs {shape[1]} scores per row; output.classes lists {k} classes",
                name,
            )


def _check_values(name: str, sig: OnnxSignature, dim: int) -> None:
    values = [o for o in sig.outputs if o[1] == "tensor" and o[2] in _FLOAT_TYPES]
    if not values:
        raise reject("onnx-output", f"{name} has no float tensor output", name)
    shape = values[0][3]
    width = shape[1] if len(shape) == 2 else 1 if len(shape) == 1 else None
    if width is not None and width != dim:
        raise reject("onnx-output", f"{name} outputs {width} values per row; output.dim says {dim}", name)


def check_onnx(name: str, data: bytes, manifest: dict[str, Any]) -> OnnxSignature:
    """Refuse an ONNX artifact that breaks a rule above; return its signature.

    Raises
    ------
    InvalidPackageError
        ``onnx-invalid``, ``onnx-domain``, ``onnx-custom-op``, ``onnx-external-data``,
        ``onnx-input``, ``onnx-classes`` or ``onnx-output``, naming ``name``.
    """
    model = parse_model(name, data)
    _check_external(name, model)
    _check_domains(name, model)
    import onnx.checker

    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise reject("onnx-invalid", f"{name} fails the ONNX checker: {str(exc)[:500]}", name) from None
    sig = signature(name, model)
    _check_input(name, sig, manifest)
    if manifest["task"] == "classification":
        _check_classes(name, sig, [str(c) for c in manifest["output"]["classes"]])
    else:
        _check_values(name, sig, int(manifest["output"]["dim"]))
    return sig
