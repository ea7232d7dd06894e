"""``package_check``: the server's upload validation, run locally before upload.

The checks are :mod:`specs.packaging` (shipped with the client), the very code
``marketplace.learnwares.packages.package_inspect`` runs, so the codes, messages and
details are the server's; here a refusal becomes a :class:`PackageError`.
``deep=True`` also loads the model (torch, never pickle; ONNX Runtime for ONNX) and checks its output shape.
"""

from __future__ import annotations

import json

import numpy as np

from lwm_client.errors import PackageError
from specs.packaging import MODEL_FILES, InvalidPackageError, ZipLimits, package_inspect
from specs.packaging import Package as CheckedPackage
from specs.packaging import check_torch_zip as _check_torch_zip

__all__ = ["MODEL_FILES", "CheckedPackage", "ZipLimits", "check_torch_zip", "package_check"]


def _client_error(exc: InvalidPackageError) -> PackageError:
    return PackageError(exc.message, code=exc.code, details=exc.details)


def check_torch_zip(name: str, data: bytes, fmt: str) -> None:
    """Refuse anything but a TorchScript / torch.export archive, as :class:`PackageError`."""
    try:
        _check_torch_zip(name, data, fmt)
    except InvalidPackageError as exc:
        raise _client_error(exc) from None


def package_check(
    data: bytes, *, limits: ZipLimits | None = None, require_spec: bool = True, deep: bool = False
) -> CheckedPackage:
    """Check a package as the server's upload does; return its parts or raise :class:`PackageError`."""
    try:
        package = package_inspect(data, limits=limits, require_spec=require_spec)
    except InvalidPackageError as exc:
        raise _client_error(exc) from None
    if deep and package.artifact_format != "peft_lora":
        _deep_check(package)
    return package


def _text_width(package: CheckedPackage) -> int | None:
    """A text head's input width: the MiniLM's 384, or on a published base its hidden size, which the
    package tells only through its rkme.json's ``d`` (None: not known here, the market checks it)."""
    from specs.packaging.choices import MINILM_NAMES

    if package.manifest.get("base_model", "") in ("", *MINILM_NAMES):
        return 384
    d = json.loads(package.rkme_json).get("d") if package.rkme_json is not None else None
    return d if isinstance(d, int) and d > 0 else None


def _probe_input(package: CheckedPackage) -> np.ndarray | None:
    manifest = package.manifest
    if manifest["modality"] == "table":
        return np.zeros((4, len(manifest["input"]["columns"])), dtype=np.float32)
    if manifest["modality"] == "image":
        return np.zeros((4, *manifest["input"]["shape"]), dtype=np.float32)
    width = _text_width(package)
    # unit rows, as the encoders' embeddings are
    return np.full((4, width), width**-0.5, dtype=np.float32) if width is not None else None


def _deep_check(package: CheckedPackage) -> None:
    """Load the model (TorchScript/torch.export, or ONNX in ONNX Runtime) and check it maps 4 inputs to 4 x
    output.dim."""
    from lwm_client.predict import _run, load_model

    name, raw = next(iter(package.artifact.items()))
    model = load_model(raw, package.artifact_format)
    probe = _probe_input(package)
    if probe is None:
        return
    try:
        out = _run(model, probe)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model is a finding, reported with its text
        raise PackageError(
            f"{name} raised on a probe batch: {exc}", code="publish:user:crashed", details={"file": name}
        ) from None
    dim = package.manifest["output"]["dim"]
    shape = tuple(out.shape)
    if shape[:1] != (4,) or (len(shape) > 1 and int(out.reshape(4, -1).shape[1]) != dim):
        raise PackageError(
            f"{name} returned shape {shape} for 4 inputs; the manifest's output says {dim} per input",
            code="publish:user:output-shape",
            details={"file": name},
        )
