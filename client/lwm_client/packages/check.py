"""``package_check``: the server's upload validation, run locally before upload.

Same rules, same ``upload:user:*`` codes as ``marketplace.learnwares.packages.package_inspect``
(``tests/client/test_package_parity.py`` runs both on every package builder and failure case);
``deep=True`` also loads the model with torch (never pickle) and checks its output shape.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from lwm_client.errors import PackageError
from lwm_client.packages.manifest import MANIFEST_NAME, parse_manifest
from lwm_client.packages.zipsafe import ZipLimits, fail, read_zip

MODEL_FILES = {"model.pt": "torchscript", "model.pt2": "torch_export"}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
RKME_NAME = "rkme.json"
SAMPLE_FILES = {"sample.csv": "csv", "sample.npz": "npz", "sample.jsonl": "jsonl"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pth", ".ckpt", ".joblib")
SAMPLE_FORMATS = {"table": ("csv", "npz"), "image": ("npz", "images"), "text": ("jsonl",)}


@dataclass
class CheckedPackage:
    manifest: dict[str, Any]
    artifact_format: str
    artifact: dict[str, bytes]
    rkme_json: bytes | None = None
    sample_kind: str | None = None
    sample: dict[str, bytes] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": m["name"], "kind": m["kind"], "modality": m["modality"], "task": m["task"], "license": m["license"],
                "artifact_format": self.artifact_format, "artifact_bytes": sum(len(v) for v in self.artifact.values()),
                "spec": "rkme.json" if self.rkme_json else f"sample ({self.sample_kind}, {len(self.sample)} file(s))"}


def check_torch_zip(name: str, data: bytes, fmt: str) -> None:
    """TorchScript / torch.export archives only: a torch.save checkpoint is a pickle."""
    if data[:1] == b"\x80":
        raise fail("pickle-artifact", f"{name} is a pickle (legacy torch.save); save with torch.jit.save or torch.export.save", name)
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise fail("artifact-format", f"{name} is not a TorchScript or torch.export archive", name) from None
    parts = [e.split("/", 1)[-1] for e in entries]
    scripted = any(p.startswith("code/") for p in parts)
    exported = any(p == "archive_format" or p.startswith("models/") for p in parts)
    if not scripted and not exported:
        if "data.pkl" in parts:
            raise fail("pickle-artifact", f"{name} is a pickle-based torch.save checkpoint; save with torch.jit.save or torch.export.save", name)
        raise fail("artifact-format", f"{name} is not a TorchScript or torch.export archive", name)
    if (fmt == "torchscript") != scripted:
        raise fail("artifact-format", f"{name}: .pt must hold torch.jit.save output and .pt2 torch.export.save output", name)


def _check_adapter(files: dict[str, bytes]) -> None:
    try:
        config = json.loads(files["adapter_config.json"])
    except ValueError:
        raise fail("adapter-config", "adapter_config.json is not valid JSON", "adapter_config.json") from None
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise fail("adapter-config", "adapter_config.json: field 'peft_type' must be LORA", "adapter_config.json")
    r = config.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or not 0 < r <= 1024:
        raise fail("adapter-config", f"adapter_config.json: field 'r' must be an integer in [1, 1024], got {r!r}", "adapter_config.json")
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        tensors = load(files["adapter_model.safetensors"])
    except (SafetensorError, ValueError, KeyError, ImportError) as exc:
        raise fail("adapter-weights", f"adapter_model.safetensors is not a readable safetensors file: {exc}", "adapter_model.safetensors") from None
    if not any("lora_A" in k for k in tensors) or not any("lora_B" in k for k in tensors):
        raise fail("adapter-weights", "adapter_model.safetensors has no lora_A/lora_B weights", "adapter_model.safetensors")


def _artifact(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    if manifest["kind"] == "adapter":
        missing = [n for n in ADAPTER_FILES if n not in files]
        if missing:
            raise fail("artifact-missing", f"an adapter package needs {', '.join(missing)}", missing[0])
        adapter = {n: files[n] for n in ADAPTER_FILES}
        _check_adapter(adapter)
        return "peft_lora", adapter
    present = [n for n in MODEL_FILES if n in files]
    if len(present) != 1:
        raise fail("artifact-missing", "a model package needs exactly one of model.pt (TorchScript) or model.pt2 (torch.export)", "model.pt")
    name = present[0]
    check_torch_zip(name, files[name], MODEL_FILES[name])
    return MODEL_FILES[name], {name: files[name]}


def _sample(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str | None, dict[str, bytes]]:
    found = {n: k for n, k in SAMPLE_FILES.items() if n in files}
    images = {n: b for n, b in files.items() if n.startswith("sample/") and n.lower().endswith(IMAGE_SUFFIXES)}
    if images:
        found["sample/"] = "images"
    if len(found) > 1:
        raise fail("sample-ambiguous", f"send one sample, not {', '.join(sorted(found))}")
    if not found:
        return None, {}
    name, kind = next(iter(found.items()))
    allowed = SAMPLE_FORMATS[manifest["modality"]]
    if kind not in allowed:
        raise fail("sample-format", f"{name} is not a {manifest['modality']} sample format ({', '.join(allowed)})", name)
    return kind, (images if kind == "images" else {name: files[name]})


def package_check(data: bytes, *, limits: ZipLimits | None = None, require_spec: bool = True, deep: bool = False) -> CheckedPackage:
    """Check a package as the server's upload does; return its parts or raise :class:`PackageError`."""
    files = read_zip(data, limits)
    for name in files:
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise fail("pickle-artifact", f"{name}: pickle-based files are refused (use TorchScript, torch.export or safetensors)", name)
    if MANIFEST_NAME not in files:
        raise fail("manifest-missing", f"the package has no {MANIFEST_NAME} at its root", MANIFEST_NAME)
    manifest = parse_manifest(files[MANIFEST_NAME])
    fmt, artifact = _artifact(manifest, files)
    sample_kind, sample = _sample(manifest, files)
    rkme = files.get(RKME_NAME)
    if rkme is None and sample_kind is None and require_spec:
        raise fail("spec-missing", f"the package needs {RKME_NAME} or a data sample (sample.csv, sample.npz, sample.jsonl or sample/*.png)", RKME_NAME)
    if rkme is not None and sample_kind is not None:
        raise fail("sample-ambiguous", f"send {RKME_NAME} or a sample, not both", RKME_NAME)
    package = CheckedPackage(manifest=manifest, artifact_format=fmt, artifact=artifact, rkme_json=rkme, sample_kind=sample_kind, sample=sample)
    if deep and fmt != "peft_lora":
        _deep_check(package)
    return package


def _probe_input(manifest: dict[str, Any]) -> Any:
    import torch

    if manifest["modality"] == "table":
        return torch.zeros(4, len(manifest["input"]["columns"]))
    if manifest["modality"] == "image":
        return torch.zeros(4, *manifest["input"]["shape"])
    return torch.nn.functional.normalize(torch.ones(4, 384), dim=1)


def _deep_check(package: CheckedPackage) -> None:
    """Load the model (TorchScript/torch.export only) and check it maps 4 inputs to 4 x output.dim."""
    from lwm_client.predict import load_model

    name, raw = next(iter(package.artifact.items()))
    model = load_model(raw, package.artifact_format)
    try:
        out = model(_probe_input(package.manifest))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model is a finding, reported with its text
        raise PackageError(f"{name} raised on a probe batch: {exc}", code="publish:user:crashed", details={"file": name}) from None
    dim = package.manifest["output"]["dim"]
    shape = tuple(out.shape)
    if shape[:1] != (4,) or (len(shape) > 1 and int(out.reshape(4, -1).shape[1]) != dim):
        raise PackageError(f"{name} returned shape {shape} for 4 inputs; the manifest's output says {dim} per input",
                           code="publish:user:output-shape", details={"file": name})
