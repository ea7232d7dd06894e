"""A learnware package: a zip with ``learnware.yaml``, the artifact and an RKME or a sample.

``package_inspect(bytes)`` runs every check that needs no model loading (zip
safety, manifest, artifact format, no pickles, spec present) and returns the
parts; the worker's sandbox does the rest. Format: ``docs/package-format.md``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import ArtifactFormat, Kind, Modality
from marketplace.learnwares.packages.manifest import MANIFEST_NAME, parse_manifest
from marketplace.learnwares.packages.zipsafe import ZipLimits, read_zip

MODEL_FILES = {"model.pt": ArtifactFormat.TORCHSCRIPT, "model.pt2": ArtifactFormat.TORCH_EXPORT}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
RKME_NAME = "rkme.json"
SAMPLE_FILES = {"sample.csv": "csv", "sample.npz": "npz", "sample.jsonl": "jsonl"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pth", ".ckpt", ".joblib")


@dataclass
class Package:
    manifest: dict[str, Any]
    artifact_format: str
    artifact: dict[str, bytes]  # file name -> bytes (one file for models, two for adapters)
    rkme_json: bytes | None = None
    sample_kind: str | None = None  # csv | npz | jsonl | images
    sample: dict[str, bytes] = field(default_factory=dict)

    @property
    def artifact_bytes(self) -> bytes:
        return next(iter(self.artifact.values()))

    @property
    def sample_names(self) -> list[str]:
        return sorted(self.sample)


def _fail(code: str, message: str, path: str | None = None) -> ValidationFailed:
    return ValidationFailed(message, code=f"upload:user:{code}", details={"file": path} if path else {})


def _check_torch_zip(name: str, data: bytes, fmt: str) -> None:
    """TorchScript / torch.export archives only; a torch.save checkpoint is a pickle."""
    if data[:1] == b"\x80":
        raise _fail("pickle-artifact", f"{name} is a pickle (legacy torch.save); save with torch.jit.save or torch.export.save", name)
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise _fail("artifact-format", f"{name} is not a TorchScript or torch.export archive", name) from None
    parts = [e.split("/", 1)[-1] for e in entries]
    scripted = any(p.startswith("code/") for p in parts)
    exported = any(p == "archive_format" or p.startswith("models/") for p in parts)
    if not scripted and not exported:
        if any(p == "data.pkl" for p in parts):
            raise _fail("pickle-artifact", f"{name} is a pickle-based torch.save checkpoint; save with torch.jit.save or torch.export.save", name)
        raise _fail("artifact-format", f"{name} is not a TorchScript or torch.export archive", name)
    if (fmt == ArtifactFormat.TORCHSCRIPT) != scripted:
        raise _fail("artifact-format", f"{name}: .pt must hold torch.jit.save output and .pt2 torch.export.save output", name)


def _check_adapter(files: dict[str, bytes]) -> None:
    try:
        config = json.loads(files["adapter_config.json"])
    except ValueError:
        raise _fail("adapter-config", "adapter_config.json is not valid JSON", "adapter_config.json") from None
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise _fail("adapter-config", "adapter_config.json: field 'peft_type' must be LORA", "adapter_config.json")
    r = config.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or not 0 < r <= 1024:
        raise _fail("adapter-config", f"adapter_config.json: field 'r' must be an integer in [1, 1024], got {r!r}", "adapter_config.json")
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        tensors = load(files["adapter_model.safetensors"])
    except (SafetensorError, ValueError, KeyError, ImportError) as exc:
        raise _fail("adapter-weights", f"adapter_model.safetensors is not a readable safetensors file: {exc}", "adapter_model.safetensors") from None
    if not any("lora_A" in k for k in tensors) or not any("lora_B" in k for k in tensors):
        raise _fail("adapter-weights", "adapter_model.safetensors has no lora_A/lora_B weights", "adapter_model.safetensors")


def _artifact(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    if manifest["kind"] == Kind.ADAPTER:
        missing = [n for n in ADAPTER_FILES if n not in files]
        if missing:
            raise _fail("artifact-missing", f"an adapter package needs {', '.join(missing)}", missing[0])
        adapter = {n: files[n] for n in ADAPTER_FILES}
        _check_adapter(adapter)
        return ArtifactFormat.PEFT_LORA, adapter
    present = [n for n in MODEL_FILES if n in files]
    if len(present) != 1:
        raise _fail("artifact-missing", "a model package needs exactly one of model.pt (TorchScript) or model.pt2 (torch.export)", "model.pt")
    name = present[0]
    _check_torch_zip(name, files[name], MODEL_FILES[name])
    return MODEL_FILES[name], {name: files[name]}


def _sample(manifest: dict[str, Any], files: dict[str, bytes]) -> tuple[str | None, dict[str, bytes]]:
    found = {n: k for n, k in SAMPLE_FILES.items() if n in files}
    images = {n: b for n, b in files.items() if n.startswith("sample/") and n.lower().endswith(IMAGE_SUFFIXES)}
    if images:
        found["sample/"] = "images"
    if len(found) > 1:
        raise _fail("sample-ambiguous", f"send one sample, not {', '.join(sorted(found))}")
    if not found:
        return None, {}
    name, kind = next(iter(found.items()))
    allowed = {Modality.TABLE: ("csv", "npz"), Modality.IMAGE: ("npz", "images"), Modality.TEXT: ("jsonl",)}[manifest["modality"]]
    if kind not in allowed:
        raise _fail("sample-format", f"{name} is not a {manifest['modality']} sample format ({', '.join(allowed)})", name)
    return kind, (images if kind == "images" else {name: files[name]})


def package_inspect(data: bytes, *, limits: ZipLimits | None = None, require_spec: bool = True) -> Package:
    """Check a package without loading its model; return its parts.

    Raises
    ------
    ValidationFailed
        With an ``upload:user:*`` code naming the bad file or manifest field.
    """
    files = read_zip(data, limits)
    for name in files:
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise _fail("pickle-artifact", f"{name}: pickle-based files are refused (use TorchScript, torch.export or safetensors)", name)
    if MANIFEST_NAME not in files:
        raise _fail("manifest-missing", f"the package has no {MANIFEST_NAME} at its root", MANIFEST_NAME)
    manifest = parse_manifest(files[MANIFEST_NAME])
    fmt, artifact = _artifact(manifest, files)
    sample_kind, sample = _sample(manifest, files)
    rkme = files.get(RKME_NAME)
    if rkme is None and sample_kind is None and require_spec:
        raise _fail("spec-missing", f"the package needs {RKME_NAME} or a data sample (sample.csv, sample.npz, sample.jsonl or sample/*.png)", RKME_NAME)
    if rkme is not None and sample_kind is not None:
        raise _fail("sample-ambiguous", f"send {RKME_NAME} or a sample, not both", RKME_NAME)
    return Package(manifest=manifest, artifact_format=fmt, artifact=artifact, rkme_json=rkme, sample_kind=sample_kind, sample=sample)


def package_without(data: bytes, names: set[str]) -> bytes:
    """The same zip minus ``names``, rewritten deterministically (dates and order kept)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename in names or info.is_dir():
                continue
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            target.writestr(copy, source.read(info))
    return out.getvalue()
