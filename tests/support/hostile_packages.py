"""Packages that try to run code or touch files when loaded or called, for ``tests/security/test_formats_*``.

Every payload writes a *marker file* at a path the test chooses (in a world-writable folder,
so an unprivileged sandbox uid could write it too): a marker that exists afterwards proves
the payload ran somewhere. Models are defined here, in a file, because ``torch.jit.script``
needs their source.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import uuid
import zipfile
from pathlib import Path

import torch

from tests.support import packages


def marker_path() -> Path:
    """A fresh marker path in a world-writable folder (the sandbox may run as uid 65534)."""
    folder = Path(tempfile.gettempdir()) / "lwm-formats-markers"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o1777)
    return folder / f"marker-{uuid.uuid4().hex}"


# --- TorchScript that reaches outside the graph ------------------------------------------------
@torch.jit.script
def _read_file(x: torch.Tensor, path: str) -> torch.Tensor:
    if bool(x.sum() > -1.0):  # the file op hides in a branch of a called function
        leaked = torch.from_file(path, shared=True, size=1)
        return x + leaked.sum()
    return x


class _Reader(torch.nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _read_file(x, self.path)


class FromFileModel(torch.nn.Module):
    """Maps (n, 3) to (n, 2) but maps ``path`` into memory with ``torch.from_file(shared=True)``,
    which creates the file when it is missing, deep inside a submodule's called function."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.inner = torch.nn.Sequential(_Reader(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(1):
            x = self.inner(x)
        return self.linear(x)


class SaveModel(torch.nn.Module):
    """Writes its input to ``path`` with ``torch.save`` before answering."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.path)
        return self.linear(x)


class PrintModel(torch.nn.Module):
    """Prints into the log a failed publish hands back to its uploader."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("exfiltrated", x.sum())
        return x[:, :2]


class SetstateModel(torch.nn.Module):
    """A harmless ``forward``, but ``__setstate__`` (run by ``torch.jit.load`` itself) writes ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.weight = torch.ones(2)
        self.path = path

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        torch.save(self.weight, self.path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2] * self.weight


@torch.jit.interface
class Step(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the name nn.Identity uses
        pass


class InterfaceModel(torch.nn.Module):
    """Calls a submodule through a module interface (a call the graph cannot inline)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step.forward(x)


# A real class object, not the string ``from __future__ import annotations`` would leave.
InterfaceModel.__annotations__ = {"step": Step}


def _save_inputs(module: torch.nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    torch.save(inputs[0], "/nonexistent/hook")
    return inputs


def hooked_model() -> torch.nn.Module:
    """A Linear whose forward pre-hook (not a method: hooks are listed apart) writes a file."""
    model = torch.nn.Linear(3, 2)
    model.register_forward_pre_hook(_save_inputs)
    return model


@torch.jit.script
class Stash:
    """A TorchScript class whose ``dump`` no method of the model calls (yet it is compiled and loadable)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def dump(self, x: torch.Tensor) -> None:
        torch.save(x, self.path)


class StashHolder(torch.nn.Module):
    """Builds a :class:`Stash` but never calls ``dump``: only a walk of every compiled function sees it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stash = Stash("/nonexistent/stash")
        return x[:, :2] + float(len(stash.path))


def scripted(module: torch.nn.Module) -> bytes:
    return packages.torchscript_bytes(module.eval())


# --- torch.export archive with a code-running pickle ---------------------------------------------
class _RunsOnUnpickle:
    """Unpickles to valid sample inputs, after creating ``path``: what the issue's payload did."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        source = (
            f"__import__('pathlib').Path({self.path!r}).touch() or ((__import__('torch').zeros(2, 3),), {{}})"
        )
        return (eval, (source,))


def pt2_with_pickle_payload(path: str) -> bytes:
    """A real ``torch.export.save`` archive whose ``data/sample_inputs/model.pt`` pickle runs code.

    ``torch.export.load`` reads that member with ``weights_only=True`` and, when that fails,
    again with full pickle: the payload runs (see the positive control in the tests)."""
    program = torch.export.export(torch.nn.Linear(3, 2).eval(), (torch.zeros(2, 3),))
    clean = io.BytesIO()
    torch.export.save(program, clean)
    payload = io.BytesIO()
    torch.save(_RunsOnUnpickle(path), payload)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(clean.getvalue())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = (
                payload.getvalue()
                if info.filename.endswith("data/sample_inputs/model.pt")
                else source.read(info)
            )
            target.writestr(info, data)
    return out.getvalue()


def table_package(model: bytes, *, name: str, file: str = "model.pt") -> bytes:
    """A table classification package (columns a, b, c; classes 2) around ``model`` saved as ``file``."""
    manifest = packages.manifest_yaml(
        name=name,
        description="hostile",
        kind="model",
        modality="table",
        task="classification",
        input={"columns": ["a", "b", "c"]},
        output={"classes": ["x", "y"]},
        license="MIT",
    )
    return packages.zip_bytes(
        {
            "learnware.yaml": manifest,
            file: model,
            "rkme.json": packages.rkme_json(packages.table_data(["a", "b", "c"]), 1 / 6),
        }
    )


# --- safetensors headers out of bounds -----------------------------------------------------------
def safetensors_with_header(header: dict[str, object], data: bytes = b"") -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def many_tensors_safetensors(count: int) -> bytes:
    """``count`` empty F32 tensors: a few bytes of data, a header the size of ``count`` entries."""
    return safetensors_with_header(
        {
            f"base_model.model.l{i}.lora_A.weight": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
            for i in range(count)
        }
    )


def adapter_package_with_weights(weights: bytes, *, name: str) -> bytes:
    """The tests' MiniLM LoRA adapter package with ``adapter_model.safetensors`` replaced by ``weights``."""
    with zipfile.ZipFile(io.BytesIO(packages.build_lora_adapter_package(name=name))) as source:
        files: dict[str, bytes | str] = {n: source.read(n) for n in source.namelist()}
    files["adapter_model.safetensors"] = weights
    return packages.zip_bytes(files)


def markers_left(path: Path) -> list[str]:
    """Files named like ``path`` in its folder, the temp dir and the working directory."""
    places = [path.parent, Path(tempfile.gettempdir()), Path(os.getcwd())]
    return sorted({str(p / path.name) for p in places if (p / path.name).exists()})
