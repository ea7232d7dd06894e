"""What runs inside one sandboxed call: limits, then load artifact -> check -> run.

Used by the fork server (``zygote``) in each forked call after it entered the call's own
namespaces (``namespaces.enter_call``). Exit status of a call: 0 output written, 3 error,
4 out of memory (a signal: the limits killed it).
Imports: the standard library, numpy and torch (transformers/peft lazily) — no Django.
"""

from __future__ import annotations

import io
import json
import os
import resource
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXIT_ERROR, EXIT_MEMORY = 3, 4


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def apply_limits(limits: dict[str, Any], *, processes: bool) -> None:
    """rlimits of this call; memory is counted on top of what torch already maps here."""
    memory = _vm_size() + int(limits["memory_mb"]) * 2**20
    cpu = int(limits["cpu_seconds"])  # a fresh fork: its CPU time starts at zero
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    fsize = int(limits["file_size_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(limits["max_open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes:  # counted in the call's own user namespace: only this call's processes
        nproc = int(limits["max_processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor")
    return out


_BASES: dict[str, Any] = {}


def _load_base(path: str) -> Any:
    if path not in _BASES:
        from transformers import AutoModel, AutoTokenizer

        _BASES[path] = (AutoTokenizer.from_pretrained(path, local_files_only=True),
                        AutoModel.from_pretrained(path, local_files_only=True).eval())
    return _BASES[path]


def _run_adapter(folder: Path, base_model_path: str, inputs: np.ndarray) -> np.ndarray:
    from peft import PeftModel

    tokenizer, base = _load_base(base_model_path)
    model = PeftModel.from_pretrained(base, str(folder), is_trainable=False).eval()
    batch = tokenizer([str(t) for t in inputs.tolist()], padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def load_artifact(kind: str, path: Path) -> Any:
    """The model object of ``path``; never a full unpickler (TorchScript / torch.export only)."""
    if kind == "torchscript":
        return torch.jit.load(str(path), map_location="cpu")
    if kind == "torch_export":
        return torch.export.load(str(path)).module()
    raise ValueError(f"unknown artifact kind {kind!r}")


def check_artifact(kind: str, model: Any) -> None:
    """The one place where a loaded model is inspected before it runs (e.g. the TorchScript
    operator allow-list); raise to refuse it. The sandbox holds even when this lets a model through."""


def execute(req: dict[str, Any], folder: Path) -> np.ndarray:
    """Load artifact -> check -> run, on ``folder``'s ``inputs.npy``."""
    inputs = np.load(folder / "inputs.npy", allow_pickle=False)
    with torch.no_grad():
        if req["kind"] == "peft_lora":
            return _run_adapter(folder / "artifact", req["base_model_path"], inputs)
        model = load_artifact(req["kind"], folder / "artifact")
        check_artifact(req["kind"], model)
        return _first_tensor(model(torch.from_numpy(inputs))).detach().cpu().numpy()


def warm(kind: str | None, base_model_path: str | None) -> None:
    """Do the slow one-off work in the fork server, so that calls (its forks) do not repeat it."""
    if kind == "torch_export":
        exported = torch.export.export(torch.nn.Linear(1, 1), (torch.zeros(1, 1),))
        buffer = io.BytesIO()
        torch.export.save(exported, buffer)
        buffer.seek(0)
        torch.export.load(buffer)
    elif kind == "peft_lora" and base_model_path:
        import peft  # noqa: F401 - imported once here rather than in every call

        _load_base(base_model_path)
    else:
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1)), buffer)
        buffer.seek(0)
        torch.jit.load(buffer)


def run_call(req: dict[str, Any], folder: Path, answer: int) -> int:
    """Run one call's model on ``folder`` and write the ``.npy`` bytes of its output (or a JSON
    error) to the file descriptor ``answer``; returns the exit status (0, EXIT_ERROR, EXIT_MEMORY)."""
    try:
        torch.set_num_threads(1)
        out = execute(req, folder)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(out), allow_pickle=False)
        _write_all(answer, buffer.getvalue())
        return 0
    except BaseException as exc:  # noqa: BLE001 - the call reports every failure, then dies
        text = f"{type(exc).__name__}: {exc}"
        memory = isinstance(exc, MemoryError) or "can't allocate memory" in text or "std::bad_alloc" in text
        try:
            _write_all(answer, json.dumps({"type": type(exc).__name__, "message": str(exc)[:2000]}).encode())
            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110 - nothing more can be reported
            pass
        return EXIT_MEMORY if memory else EXIT_ERROR


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
