"""Build a learnware package zip (format: ``docs/package-format.md``) deterministically.

The same inputs give the same bytes (sorted entries, fixed timestamps), so a
re-publish of an unchanged learnware uploads an identical package.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lwm_client.data import rkme_document
from lwm_client.errors import PackageError
from specs import RKMESpecification

DATE = (2024, 1, 1, 0, 0, 0)


def zip_files(files: Mapping[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            data = files[name]
            archive.writestr(info, data.encode() if isinstance(data, str) else data)
    return buffer.getvalue()


def csv_sample(columns: Sequence[str], X: np.ndarray) -> str:
    return ",".join(columns) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n"


def jsonl_sample(texts: Sequence[str]) -> str:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts)


def build_package(
    *,
    manifest: Mapping[str, Any],
    model: bytes | str | Path | None = None,
    model_format: str = "torchscript",
    adapter: Mapping[str, bytes] | str | Path | None = None,
    rkme: RKMESpecification | str | None = None,
    sample: Mapping[str, bytes | str] | None = None,
) -> bytes:
    """Assemble ``learnware.yaml`` + artifact + (``rkme.json`` or a sample) into a zip.

    ``model``: TorchScript (``torch.jit.save``) or ONNX (``model_format="onnx"``) bytes or a path;
    torch.export is
    refused (its archives unpickle when loaded). ``adapter``: a PEFT folder or its two files.
    ``sample``: file name -> content, e.g. ``{"sample.csv": csv_sample(columns, X)}``.
    """
    files: dict[str, bytes | str] = {"learnware.yaml": yaml.safe_dump(dict(manifest), sort_keys=False)}
    if (model is None) == (adapter is None):
        raise PackageError("give exactly one of model and adapter", code="package:user:artifact")
    if model is not None:
        name = {"torchscript": "model.pt", "onnx": "model.onnx"}.get(model_format)
        if name is None:
            raise PackageError(
                f"model_format {model_format!r} is not accepted: only torchscript or onnx (torch.export "
                "archives unpickle when loaded)",
                code="upload:user:unsafe-format",
            )
        files[name] = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    if adapter is not None:
        if isinstance(adapter, (str, Path)):
            folder = Path(adapter)
            adapter = {
                n: (folder / n).read_bytes() for n in ("adapter_config.json", "adapter_model.safetensors")
            }
        files.update(adapter)
    if rkme is not None:
        # A table spec from Client.spec_table carries the rows' per-column RMS (``unit_rms``): the
        # market stores it, so users' rows can be converted into this model's units.
        files["rkme.json"] = rkme if isinstance(rkme, str) else json.dumps(rkme_document(rkme))
    files.update(sample or {})
    return zip_files(files)


def package_bytes(path: str | Path) -> bytes:
    """A package from a zip file, or from a folder holding ``learnware.yaml`` and the other files."""
    path = Path(path)
    if path.is_dir():
        files = {
            p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }
        if "learnware.yaml" not in files:
            raise PackageError(
                f"{path} has no learnware.yaml",
                code="upload:user:manifest-missing",
                details={"file": "learnware.yaml"},
            )
        return zip_files(files)
    if not path.exists():
        raise PackageError(f"{path} does not exist", code="package:user:missing")
    return path.read_bytes()
