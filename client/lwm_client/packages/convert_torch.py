"""Convert a PyTorch module to an ONNX learnware package (the legacy exporter: standard operators only).

Split from :mod:`lwm_client.packages.convert`, whose checks (``verify``) and errors it shares.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lwm_client.errors import PackageError
from lwm_client.packages.build import build_package, csv_sample
from lwm_client.packages.check import package_check
from lwm_client.packages.convert import PROBE_ROWS, not_convertible, qualname, verify


def torch_to_onnx(module: Any, example: Any) -> bytes:
    """ONNX bytes of a torch module traced on ``example`` (legacy exporter: standard ops only, batch axis
    dynamic)."""
    import torch

    buffer = io.BytesIO()
    try:
        with torch.no_grad():
            # The legacy exporter (dynamo=False) writes to any binary file object; the stub names paths only.
            torch.onnx.export(
                module.eval(),
                (example,),
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "n"}, "output": {0: "n"}},
                opset_version=17,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise not_convertible(qualname(module), exc) from None
    return buffer.getvalue()


def from_torch(
    module: Any,
    example: Any,
    *,
    name: str,
    sample: np.ndarray | None = None,
    columns: Sequence[str] | None = None,
    shape: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    dim: int | None = None,
    description: str = "",
    license: str = "MIT",
    rkme: Any = None,
    **manifest: Any,
) -> bytes:
    """A learnware package of a torch module, exported to ONNX on ``example`` (a float tensor batch).

    Tables: ``columns`` and ``sample`` rows; images: ``shape`` [C, H, W] and ``sample`` images (n, C, H, W)
    in [0, 1]. ``classes`` (scores per class) or ``dim`` (regression/embedding width).
    """
    import torch

    onnx_bytes = torch_to_onnx(module, example)
    probe = np.asarray(sample if sample is not None else example.numpy(), dtype=np.float32)[:PROBE_ROWS]

    def original(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.asarray(x, dtype=np.float32))).double().numpy()

    if classes is not None:  # scores per class: the same argmax, and the same raw scores
        verify(
            onnx_bytes, probe, predict=lambda x: original(x).argmax(axis=1), classes=list(range(len(classes)))
        )
    verify(onnx_bytes, probe, predict=original)
    task = "classification" if classes is not None else manifest.pop("task", "regression")
    output = {"classes": [str(c) for c in classes]} if classes is not None else {"dim": int(dim or 1)}
    if shape is not None:
        doc: dict[str, Any] = {"modality": "image", "input": {"shape": [int(v) for v in shape]}}
        files: dict[str, bytes | str] | None
        files = (
            None
            if sample is None or rkme is not None
            else {"sample.npz": _npz(images=np.asarray(sample, dtype=np.float32))}
        )
    else:
        if columns is None:
            raise PackageError(
                "give columns (a table model) or shape (an image model)", code="package:user:input"
            )
        doc = {"modality": "table", "input": {"columns": [str(c) for c in columns]}}
        files = (
            None
            if sample is None or rkme is not None
            else {"sample.csv": csv_sample([str(c) for c in columns], np.asarray(sample))}
        )
    doc = {
        "name": name,
        "description": description,
        "kind": "model",
        **doc,
        "task": task,
        "output": output,
        "license": license,
        **manifest,
    }
    package = build_package(manifest=doc, model=onnx_bytes, model_format="onnx", rkme=rkme, sample=files)
    package_check(package)
    return package


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()
