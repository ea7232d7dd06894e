"""Builders of tiny learnware packages, valid and invalid, for every test that needs one.

Each builder returns the zip as bytes. Models are a few parameters (a traced
``nn.Linear``), so the sandbox runs them in milliseconds; nothing downloads.
See ``docs/package-format.md`` for the format they follow.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from specs import RKMESpecification, rkme_to_json
from specs.image_spaces import DEFAULT_IMAGE_SPACE_KEY, IMAGE_SPACES, image_encoder

TEXT_DIM = 384
MINILM_MODULES = ("query", "value")
DATE = (2024, 1, 1, 0, 0, 0)


# --- models (defined in a file: torch.jit.script needs their source) -----------------------
class Hang(torch.nn.Module):
    """Loops forever: the sandbox's CPU limit must stop it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        while i >= 0:
            i = i + 1
            x = x + 0.0
        return x


class Hog(torch.nn.Module):
    """Asks for 16 GiB: the sandbox's memory limit must refuse it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.ones(4096, 1024, 1024)
        return big.sum(0)[: x.shape[0], :2]


class Crash(torch.nn.Module):
    """Raises on every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= 0:
            raise RuntimeError("deliberate crash")
        return x


def torchscript_bytes(module: torch.nn.Module, example: torch.Tensor | None = None) -> bytes:
    """``torch.jit.save`` of ``module`` (traced when an example is given, else scripted)."""
    scripted = torch.jit.trace(module, example) if example is not None else torch.jit.script(module)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def linear_model_bytes(d_in: int, d_out: int, *, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return torchscript_bytes(torch.nn.Linear(d_in, d_out).eval(), torch.zeros(2, d_in))


def conv_model_bytes(shape: Sequence[int], n_out: int, *, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(shape[0], 2, 3, padding=1),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * shape[1] * shape[2], n_out),
    ).eval()
    return torchscript_bytes(model, torch.zeros(2, *shape))


def export_model_bytes(d_in: int, d_out: int, *, seed: int = 0) -> bytes:
    """A ``torch.export.save`` archive (.pt2) of a Linear with a dynamic batch size."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(d_in, d_out).eval()
    program = torch.export.export(
        model, (torch.zeros(2, d_in),), dynamic_shapes=({0: torch.export.Dim("n")},)
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def pickle_model_bytes(d_in: int = 3, d_out: int = 2) -> bytes:
    """A ``torch.save`` checkpoint of a whole module: a pickle, which must be refused."""
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(d_in, d_out), buffer)
    return buffer.getvalue()


# --- zip and manifest ------------------------------------------------------------------------
def zip_bytes(files: dict[str, bytes | str], *, symlinks: Sequence[str] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (stat.S_IFLNK | 0o777) if name in symlinks else (stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            archive.writestr(info, data.encode() if isinstance(data, str) else data)
    return buffer.getvalue()


def zip_file(files: dict[str, bytes | str], path: Path) -> Path:
    """``files`` zipped (:func:`zip_bytes`) and written to ``path``; returns ``path``."""
    path.write_bytes(zip_bytes(files))
    return path


def manifest_yaml(**fields: Any) -> str:
    drop = [k for k, v in fields.items() if v is ...]
    return yaml.safe_dump({k: v for k, v in fields.items() if k not in drop}, sort_keys=False)


def rkme_json(X: np.ndarray, gamma: float, *, K: int = 8, seed: int = 0) -> str:
    return rkme_to_json(RKMESpecification(min(K, len(X)), gamma, random_state=seed).fit(X))


def table_data(columns: Sequence[str], rows: int = 60, *, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=shift + np.arange(len(columns)), scale=1.0, size=(rows, len(columns)))


def csv_text(columns: Sequence[str], X: np.ndarray) -> str:
    return ",".join(columns) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n"


def build_table_model_package(
    columns: Sequence[str] = ("a", "b", "c"),
    n_classes: int = 2,
    *,
    rkme: bool = True,
    sample: str | None = None,
    name: str = "table-model",
    task: str = "classification",
    model: bytes | None = None,
    model_name: str = "model.pt",
    rows: int = 60,
    seed: int = 0,
    data: np.ndarray | None = None,
    manifest: dict[str, Any] | None = None,
    extra: dict[str, bytes | str] | None = None,
) -> bytes:
    """A table model package: a traced Linear(d, n_classes) + ``rkme.json`` or a sample.

    ``sample`` is ``"csv"`` or ``"npz"`` (then ``rkme`` is ignored); ``manifest``
    overrides manifest fields (a value of ``...`` drops the field); ``extra`` adds files.
    """
    columns = list(columns)
    X = table_data(columns, rows, seed=seed) if data is None else data
    out = (
        {"classes": [f"class{i}" for i in range(n_classes)]}
        if task == "classification"
        else {"dim": n_classes}
    )
    fields = {
        "name": name,
        "description": f"A tiny {task} model on {', '.join(columns)}.",
        "kind": "model",
        "modality": "table",
        "task": task,
        "input": {"columns": columns},
        "output": out,
        "license": "MIT",
        "tags": ["test", "table"],
        **(manifest or {}),
    }
    files: dict[str, bytes | str] = {
        "learnware.yaml": manifest_yaml(**fields),
        model_name: model if model is not None else linear_model_bytes(len(columns), n_classes, seed=seed),
    }
    if sample == "csv":
        files["sample.csv"] = csv_text(columns, X)
    elif sample == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, X=X)
        files["sample.npz"] = buffer.getvalue()
    elif rkme:
        # Identity standardisation (a space first published with a client RKME): gamma = 1 / (2 d).
        files["rkme.json"] = rkme_json(X, 1.0 / (2 * len(columns)), seed=seed)
    files.update(extra or {})
    return zip_bytes(files)


def image_data(shape: Sequence[int], rows: int = 12, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, *shape)).astype(np.float32)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def build_image_model_package(
    shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 3,
    *,
    sample: str | None = None,
    name: str = "image-model",
    seed: int = 0,
    rows: int = 12,
    manifest: dict[str, Any] | None = None,
) -> bytes:
    """An image classifier (conv + linear) with a client RKME in the image space, or a sample
    (``png``/``npz``)."""
    shape = list(shape)
    images = image_data(shape, rows, seed=seed)
    fields = {
        "name": name,
        "description": "A tiny image classifier.",
        "kind": "model",
        "modality": "image",
        "task": "classification",
        "input": {"shape": shape},
        "output": {"classes": [f"c{i}" for i in range(n_classes)]},
        "license": "Apache-2.0",
        "tags": ["test", "image"],
        **(manifest or {}),
    }
    files: dict[str, bytes | str] = {
        "learnware.yaml": manifest_yaml(**fields),
        "model.pt": conv_model_bytes(shape, n_classes, seed=seed),
    }
    if sample == "png":
        files.update({f"sample/{i:03d}.png": png_bytes(img) for i, img in enumerate(images)})
    elif sample == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, images=images)
        files["sample.npz"] = buffer.getvalue()
    else:
        # in the space the manifest names, else the default one (the server puts the learnware there)
        space = fields["input"].get("space") or DEFAULT_IMAGE_SPACE_KEY  # type: ignore[attr-defined]
        encoded = image_encoder(IMAGE_SPACES[space][0]).encode(images).astype(np.float64)
        files["rkme.json"] = rkme_json(encoded, 1.0, seed=seed)
    return zip_bytes(files)


def unit_rows(n: int, d: int, *, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_text_model_package(
    n_classes: int = 2,
    *,
    sample: list[str] | None = None,
    name: str = "text-model",
    seed: int = 0,
    manifest: dict[str, Any] | None = None,
    width: int = TEXT_DIM,
    model: dict[str, bytes] | None = None,
) -> bytes:
    """A classifier head on the text space: input (n, 384) MiniLM embeddings.

    With ``sample`` (a list of texts) the package carries ``sample.jsonl`` (the
    worker encodes it with MiniLM); otherwise an ``rkme.json`` of seeded unit vectors.
    ``width``: the head's input and the RKME's dimension (a base model's hidden size);
    ``model``: another artifact instead (``{"model.onnx": bytes}``).
    """
    fields = {
        "name": name,
        "description": "A tiny text classifier head on MiniLM embeddings.",
        "kind": "model",
        "modality": "text",
        "task": "classification",
        "input": {},
        "output": {"classes": [f"t{i}" for i in range(n_classes)]},
        "license": "MIT",
        "tags": ["test", "text"],
        **(manifest or {}),
    }
    files: dict[str, bytes | str] = {
        "learnware.yaml": manifest_yaml(**fields),
        **(model or {"model.pt": linear_model_bytes(width, n_classes, seed=seed)}),
    }
    if sample is not None:
        files["sample.jsonl"] = "\n".join(json.dumps({"text": t}) for t in sample) + "\n"
    else:
        files["rkme.json"] = rkme_json(unit_rows(30, width, seed=seed), 1.0, seed=seed)
    return zip_bytes(files)


def lora_files(
    *, r: int = 4, layers: int = 6, seed: int = 0, base: str = "sentence-transformers/all-MiniLM-L6-v2"
) -> dict[str, bytes]:
    """``adapter_config.json`` + ``adapter_model.safetensors`` of a LoRA on MiniLM's query/value."""
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(layers):
        for module in MINILM_MODULES:
            prefix = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (rng.standard_normal((r, TEXT_DIM)) * 0.05).astype(
                np.float32
            )
            tensors[f"{prefix}.lora_B.weight"] = (rng.standard_normal((TEXT_DIM, r)) * 0.05).astype(
                np.float32
            )
    config = {
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": base,
        "r": r,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.0,
        "target_modules": list(MINILM_MODULES),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    return {"adapter_config.json": json.dumps(config).encode(), "adapter_model.safetensors": save(tensors)}


def build_lora_adapter_package(
    *,
    base_model: str = "all-minilm-l6-v2",
    r: int = 4,
    name: str = "minilm-lora",
    seed: int = 0,
    sample: list[str] | None = None,
    adapter_base: str = "sentence-transformers/all-MiniLM-L6-v2",
    manifest: dict[str, Any] | None = None,
) -> bytes:
    """A LoRA adapter for the registered MiniLM base (text space, 384-d embeddings)."""
    fields = {
        "name": name,
        "description": "A tiny LoRA on MiniLM query/value.",
        "kind": "adapter",
        "modality": "text",
        "task": "embedding",
        "input": {},
        "output": {"dim": TEXT_DIM},
        "license": "Apache-2.0",
        "tags": ["test", "lora"],
        "base_model": base_model,
        **(manifest or {}),
    }
    files: dict[str, bytes | str] = {
        "learnware.yaml": manifest_yaml(**fields),
        **lora_files(r=r, seed=seed, base=adapter_base),
    }
    if sample is not None:
        files["sample.jsonl"] = "\n".join(json.dumps({"text": t}) for t in sample) + "\n"
    else:
        files["rkme.json"] = rkme_json(unit_rows(30, TEXT_DIM, seed=seed), 1.0, seed=seed)
    return zip_bytes(files)


# --- one package per failure mode ------------------------------------------------------------
def corrupt_zip() -> bytes:
    return build_table_model_package()[:200] + b"\x00garbage"


def zip_bomb(size: int = 64 * 2**20) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("learnware.yaml", manifest_yaml(name="bomb"))
        archive.writestr("padding.txt", b"\0" * size)
    return buffer.getvalue()


def path_traversal_package() -> bytes:
    return zip_bytes({"learnware.yaml": manifest_yaml(name="x"), "../../etc/evil.txt": b"owned"})


def symlink_package() -> bytes:
    return zip_bytes(
        {"learnware.yaml": manifest_yaml(name="x"), "model.pt": "/etc/passwd"}, symlinks=["model.pt"]
    )


def _nan_sample() -> bytes:
    X = table_data(["a", "b", "c"])
    X[3, 1] = np.nan
    return build_table_model_package(sample="csv", data=X, name="nan-sample")


# name -> (builder, the error code the upload must be rejected with); built lazily.
FAILURES: dict[str, tuple[Callable[[], bytes], str]] = {
    "corrupt-zip": (corrupt_zip, "upload:user:corrupt-zip"),
    "zip-bomb": (zip_bomb, "upload:user:zip-bomb"),
    "path-traversal": (path_traversal_package, "upload:user:path-traversal"),
    "symlink": (symlink_package, "upload:user:symlink"),
    "pickle-model": (
        lambda: build_table_model_package(model=pickle_model_bytes(3, 2), name="pickled"),
        "upload:user:pickle-artifact",
    ),
    "missing-field": (
        lambda: build_table_model_package(manifest={"license": ...}, name="no-license"),
        "upload:user:manifest-field",
    ),
    "unknown-base": (
        lambda: build_lora_adapter_package(base_model="bert-huge-9000", name="orphan"),
        "upload:user:unknown-base-model",
    ),
    "crash": (
        lambda: build_table_model_package(model=torchscript_bytes(Crash()), name="crasher"),
        "publish:user:crashed",
    ),
    "hang": (
        lambda: build_table_model_package(model=torchscript_bytes(Hang()), name="hanger"),
        "publish:user:cpu-limit",
    ),
    "memory": (
        lambda: build_table_model_package(model=torchscript_bytes(Hog()), name="hog"),
        "publish:user:memory-limit",
    ),
    "output-shape": (
        lambda: build_table_model_package(model=linear_model_bytes(3, 5), name="wrong-shape"),
        "publish:user:output-shape",
    ),
    "nan-sample": (_nan_sample, "publish:user:sample-not-finite"),
    "rkme-dimension": (
        lambda: build_table_model_package(
            extra={"rkme.json": rkme_json(table_data(["a", "b"]), 0.25)}, rkme=False, name="bad-rkme"
        ),
        "publish:user:rkme-dimension",
    ),
}
from tests.support.onnx_packages import ONNX_FAILURES  # noqa: E402 - it builds on the helpers above

FAILURES.update(ONNX_FAILURES)
SYNC_FAILURES = {k for k, (_, code) in FAILURES.items() if code.startswith("upload:")}
