"""A learnware package: a zip with ``learnware.yaml``, the artifact and an RKME or a sample.

``package_inspect(bytes)`` runs every check that needs no model loading (zip
safety, manifest, artifact format, no pickles, no load-time code, adapter header bounds,
spec present) and returns the
parts; the worker's sandbox does the rest. Format: ``docs/package-format.md``.

This is the one implementation: the server's upload
(``marketplace.learnwares.packages``) and the client's ``lwm package check``
(``lwm_client.packages``) both call it and only translate
:class:`~specs.packaging.errors.InvalidPackageError` into their own error type.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from specs.packaging.base_model_package import base_model_files
from specs.packaging.errors import reject
from specs.packaging.manifest import MANIFEST_NAME, parse_manifest
from specs.packaging.safetensors_header import check_safetensors_header
from specs.packaging.torchscript import check_torchscript_archive
from specs.packaging.zipsafe import ZipLimits, read_zip

MODEL_FILES = {"model.pt": "torchscript", "model.pt2": "torch_export", "model.onnx": "onnx"}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
RKME_NAME = "rkme.json"
SAMPLE_FILES = {"sample.csv": "csv", "sample.npz": "npz", "sample.jsonl": "jsonl"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pth", ".ckpt", ".joblib")
SAMPLE_FORMATS = {"table": ("csv", "npz"), "image": ("npz", "images"), "text": ("jsonl",)}


@dataclass
class Package:
    """The checked parts of a package: normalised manifest, artifact files, spec or sample."""

    manifest: dict[str, Any]
    artifact_format: str
    # file name -> bytes (one file for models, two for adapters, the model/ folder for base models)
    artifact: dict[str, bytes]
    rkme_json: bytes | None = None
    sample_kind: str | None = None  # csv | npz | jsonl | images
    sample: dict[str, bytes] = field(default_factory=dict)

    @property
    def artifact_bytes(self) -> bytes:
        return next(iter(self.artifact.values()))

    @property
    def sample_names(self) -> list[str]:
        return sorted(self.sample)

    def summary(self) -> dict[str, Any]:
        """One line of facts for a person: names, artifact format and size, which spec."""
        m = self.manifest
        return {
            "name": m["name"],
            "kind": m["kind"],
            "modality": m["modality"],
            "task": m["task"],
            "license": m["license"],
            "artifact_format": self.artifact_format,
            "artifact_bytes": sum(len(v) for v in self.artifact.values()),
            "spec": "rkme.json"
            if self.rkme_json
            else f"sample ({self.sample_kind}, {len(self.sample)} file(s))"
            if self.sample_kind
            else "none",
        }


def check_torch_zip(name: str, data: bytes, fmt: str) -> None:
    """Accept TorchScript archives that run no code while loading; refuse pickles and torch.export.

    A ``.pt2`` is refused by name: ``torch.export.load`` unpickles parts of it with full
    pickle (see docs/security.md, "Formats that cannot execute").

    Raises
    ------
    InvalidPackageError
        ``unsafe-format`` (.pt2), ``pickle-artifact``, ``artifact-format`` or ``load-time-code``,
        naming ``name``.
    """
    if fmt == "torch_export":
        raise reject(
            "unsafe-format",
            f"{name}: torch.export archives (.pt2) are not accepted, because torch.export.load "
            "unpickles parts of them with full pickle; save the model with torch.jit.save as model.pt",
            name,
        )
    if data[:1] == b"\x80":
        raise reject(
            "pickle-artifact", f"{name} is a pickle (legacy torch.save); save with torch.jit.save", name
        )
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise reject("artifact-format", f"{name} is not a TorchScript archive", name) from None
    parts = [e.split("/", 1)[-1] for e in entries]
    if not any(p.startswith("code/") for p in parts):
        if any(p == "data.pkl" for p in parts):
            raise reject(
                "pickle-artifact",
                f"{name} is a pickle-based torch.save checkpoint; save with torch.jit.save",
                name,
            )
        if any(p == "archive_format" or p.startswith("models/") for p in parts):
            raise reject(
                "unsafe-format",
                f"{name} is a torch.export archive, which is not accepted; save with torch.jit.save",
                name,
            )
        raise reject("artifact-format", f"{name} is not a TorchScript archive (torch.jit.save output)", name)
    check_torchscript_archive(data, name)


def _check_adapter(files: dict[str, bytes]) -> None:
    try:
        config = json.loads(files["adapter_config.json"])
    except ValueError:
        raise reject(
            "adapter-config", "adapter_config.json is not valid JSON", "adapter_config.json"
        ) from None
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise reject(
            "adapter-config", "adapter_config.json: field 'peft_type' must be LORA", "adapter_config.json"
        )
    r = config.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or not 0 < r <= 1024:
        raise reject(
            "adapter-config",
            f"adapter_config.json: field 'r' must be an integer in [1, 1024], got {r!r}",
            "adapter_config.json",
        )
    check_safetensors_header(files["adapter_model.safetensors"])  # bounds first: nothing is allocated before
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        tensors = load(files["adapter_model.safetensors"])
    except (SafetensorError, ValueError, KeyError, ImportError) as exc:
        raise reject(
            "adapter-weights",
            f"adapter_model.safetensors is not a readable safetensors file: {exc}",
            "adapter_model.safetensors",
        ) from None
    if not any("lora_A" in k for k in tensors) or not any("lora_B" in k for k in tensors):
        raise reject(
            "adapter-weights",
            "adapter_model.safetensors has no lora_A/lora_B weights",
            "adapter_model.safetensors",
        )


def _artifact(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    if manifest["kind"] == "base_model":
        return "hf_safetensors", base_model_files(files)
    if manifest["kind"] == "adapter":
        missing = [n for n in ADAPTER_FILES if n not in files]
        if missing:
            raise reject("artifact-missing", f"an adapter package needs {', '.join(missing)}", missing[0])
        adapter = {n: files[n] for n in ADAPTER_FILES}
        _check_adapter(adapter)
        return "peft_lora", adapter
    present = [n for n in MODEL_FILES if n in files]
    if len(present) != 1:
        raise reject(
            "artifact-missing",
            "a model package needs exactly one model file: model.pt (TorchScript) or model.onnx (ONNX)",
            "model.pt",
        )
    name = present[0]
    if MODEL_FILES[name] == "onnx":
        from specs.packaging.onnx_checks import check_onnx  # imports onnx: only for ONNX packages

        check_onnx(name, files[name], manifest)
    else:
        check_torch_zip(name, files[name], MODEL_FILES[name])
    return MODEL_FILES[name], {name: files[name]}


def _sample(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str | None, dict[str, bytes]]:
    found = {n: k for n, k in SAMPLE_FILES.items() if n in files}
    images = {
        n: b for n, b in files.items() if n.startswith("sample/") and n.lower().endswith(IMAGE_SUFFIXES)
    }
    if images:
        found["sample/"] = "images"
    if len(found) > 1:
        raise reject("sample-ambiguous", f"send one sample, not {', '.join(sorted(found))}")
    if not found:
        return None, {}
    name, kind = next(iter(found.items()))
    allowed = SAMPLE_FORMATS[manifest["modality"]]
    if kind not in allowed:
        raise reject(
            "sample-format",
            f"{name} is not a {manifest['modality']} sample format ({', '.join(allowed)})",
            name,
        )
    return kind, (images if kind == "images" else {name: files[name]})


def package_inspect(data: bytes, *, limits: ZipLimits | None = None, require_spec: bool = True) -> Package:
    """Check a package without loading its model; return its parts.

    Raises
    ------
    InvalidPackageError
        With an ``upload:user:*`` code naming the bad file or manifest field.
    """
    files = read_zip(data, limits)
    for name in files:
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise reject(
                "pickle-artifact",
                f"{name}: pickle-based files are refused (use TorchScript, ONNX or safetensors)",
                name,
            )
    if MANIFEST_NAME not in files:
        raise reject("manifest-missing", f"the package has no {MANIFEST_NAME} at its root", MANIFEST_NAME)
    manifest = parse_manifest(files[MANIFEST_NAME])
    fmt, artifact = _artifact(manifest, files)
    sample_kind, sample = _sample(manifest, files)
    rkme = files.get(RKME_NAME)
    # A base model has no RKME (``base_model_files`` refused any spec or sample).
    if rkme is None and sample_kind is None and require_spec and manifest["kind"] != "base_model":
        raise reject(
            "spec-missing",
            f"the package needs {RKME_NAME} or a data sample (sample.csv, sample.npz, sample.jsonl or "
            "sample/*.png)",
            RKME_NAME,
        )
    if rkme is not None and sample_kind is not None:
        raise reject("sample-ambiguous", f"send {RKME_NAME} or a sample, not both", RKME_NAME)
    return Package(
        manifest=manifest,
        artifact_format=fmt,
        artifact=artifact,
        rkme_json=rkme,
        sample_kind=sample_kind,
        sample=sample,
    )
