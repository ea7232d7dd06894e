"""Run an ONNX artifact with ONNX Runtime (CPU) and return what the package format promises.

One implementation for the publishing sandbox's child (``workers.sandbox.zygote``), the
market's assembly predictor and the client's ``Predictor``. The output is the manifest's
form (``docs/package-format.md``, 'What the model receives'):

* a classifier with a probabilities output (float tensor ``(n, k)`` or the ZipMap
  ``seq(map(label, float))`` form) gives ``(n, k)`` probabilities, columns in the order of
  its labels (which the upload checked are the manifest's ``output.classes``);
* a classifier with only a label output gives ``(n,)`` class positions (labels mapped
  through its ``classlabels_*``);
* anything else gives its first float tensor output (scores, values, embeddings).

Session options keep ONNX Runtime inside the sandbox's thread budget: one intra-op and
one inter-op thread, sequential execution, no spinning, no memory arena (memory returns
to the system between runs, and the address-space limit sees every allocation).
``onnxruntime`` and ``onnx`` are imported on first use only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.packaging.onnx_checks import OnnxSignature, parse_model, signature

_FLOAT_TYPES = (1, 11)


def session_options() -> Any:
    """ONNX Runtime options that cannot spawn threads beyond one per session."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: warnings would fill the sandbox log
    return options


class OnnxModel:
    """An ONNX model ready to predict: ``model(X)`` -> numpy array in the manifest's form."""

    def __init__(self, raw: bytes, name: str = "model.onnx") -> None:
        import onnxruntime as ort

        self.signature: OnnxSignature = signature(name, parse_model(name, raw))
        self.session = ort.InferenceSession(
            raw, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        self._dtype = np.float64 if self.signature.input_type == 11 else np.float32

    def _pick(self) -> tuple[str, str]:
        """(output name, role): role is ``proba``, ``labels`` or ``values``."""
        outs = self.signature.outputs
        labels = [o for o in outs if o[1] == "tensor" and o[2] not in _FLOAT_TYPES and len(o[3]) <= 1]
        zipmaps = [o for o in outs if o[1] == "seq_map"]
        floats = [o for o in outs if o[1] == "tensor" and o[2] in _FLOAT_TYPES]
        if zipmaps:
            return zipmaps[0][0], "zipmap"
        if floats:
            return floats[0][0], "proba" if labels else "values"
        if labels:
            return labels[0][0], "labels"
        raise ValueError("the ONNX model has no numeric output")

    def __call__(self, X: np.ndarray) -> np.ndarray:
        name, role = self._pick()
        try:
            (out,) = self.session.run(
                [name], {self.signature.input_name: np.ascontiguousarray(X, dtype=self._dtype)}
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types; an allocation failure becomes MemoryError
            text = str(exc)
            if "alloc" in text.lower() or "bad_alloc" in text:
                raise MemoryError(f"ONNX Runtime could not allocate memory: {text[:500]}") from exc
            raise
        order = list(self.signature.labels or ())
        if role == "zipmap":
            keys = order if order else (sorted(out[0]) if len(out) else [])
            out = np.array([[row[k] for k in keys] for row in out], dtype=np.float32).reshape(
                len(out), len(keys)
            )
        if role == "labels":
            values = np.asarray(out).reshape(-1)
            if order:
                position = {str(v): i for i, v in enumerate(order)}
                return np.array([position.get(str(v), -1) for v in values.tolist()], dtype=np.int64)
            return values.astype(np.int64)
        if role in ("proba", "zipmap"):
            # Probabilities summed in float32 (a forest's average) can come out as -4e-7: zero such rounding,
            # so
            # that every reader keeps them as probabilities instead of treating them as scores (a softmax).
            out = np.asarray(out)
            return np.where((out < 0) & (out > -1e-5), np.zeros((), dtype=out.dtype), out)
        return np.asarray(out)


def load_onnx(raw: bytes, name: str = "model.onnx") -> OnnxModel:
    """An :class:`OnnxModel` of ``raw`` (its signature read, its session built)."""
    return OnnxModel(raw, name)
