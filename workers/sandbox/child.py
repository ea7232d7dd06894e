"""What runs inside one sandboxed call: limits, then load artifact -> check -> run.

Used by the fork server (``zygote``) in each forked call after it entered the call's own
namespaces (``namespaces.enter_call``). Exit status of a call: 0 output written, 3 error,
4 out of memory, 6 refused by a format rule (a signal: the limits killed it).
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

from specs.packaging.errors import InvalidPackageError
from specs.packaging.torchscript import load_torchscript
from specs.token_limit import MAX_TOKENS

# 5 is the fork server's own set-up failure (zygote.EXIT_SETUP).
EXIT_ERROR, EXIT_MEMORY, EXIT_REFUSED = 3, 4, 6


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

        _BASES[path] = (
            AutoTokenizer.from_pretrained(path, local_files_only=True),
            AutoModel.from_pretrained(path, local_files_only=True).eval(),
        )
    return _BASES[path]


def _run_adapter(folder: Path, base_model_path: str, inputs: np.ndarray) -> np.ndarray:
    from peft import PeftModel

    tokenizer, base = _load_base(base_model_path)
    model = PeftModel.from_pretrained(base, str(folder), is_trainable=False).eval()
    batch = tokenizer(
        [str(t) for t in inputs.tolist()],
        padding=True,
        truncation=True,
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def load_artifact(kind: str, path: Path) -> Any:
    """The model object of ``path``, checked before anything of it runs; never a full unpickler.

    TorchScript goes through ``load_torchscript``: archives with load-time code are refused
    unread and every compiled function's operators are allow-listed (``InvalidPackageError``
    names the rule). torch.export (``.pt2``) is never loaded: ``torch.export.load`` unpickles
    with full pickle. The sandbox holds even when a check lets a model through."""
    if kind == "torchscript":
        return load_torchscript(path.read_bytes())
    if kind == "onnx":  # static ONNX checks, then an InferenceSession with one thread (``onnx_run``)
        from specs.packaging.onnx_run import load_onnx

        return load_onnx(path.read_bytes())
    raise ValueError(f"unknown artifact kind {kind!r}")


def execute(req: dict[str, Any], folder: Path) -> np.ndarray:
    """Load artifact -> check -> run, on ``folder``'s ``inputs.npy``."""
    inputs = np.load(folder / "inputs.npy", allow_pickle=False)
    with torch.no_grad():
        if req["kind"] == "peft_lora" and not req.get("base_model_path"):  # on a published base model
            from workers.sandbox import adapter_base_call as on_base

            if req.get("mode") == "train":  # model selection: a LoRA and a head trained on the base
                from workers.sandbox.adapter_train_call import train_on_base

                return train_on_base(folder / "artifact", inputs, str(req.get("pooling")))
            if req.get("mode") == "layers":  # reuse: every layer, with a LoRA, an assembly or nothing
                return on_base.run_adapter_layers_on_base(
                    folder / "artifact",
                    inputs,
                    str(req.get("pooling")),
                    int(req.get("max_length") or MAX_TOKENS),
                )
            return on_base.run_adapter_on_base(folder / "artifact", inputs, str(req.get("pooling")))
        if req["kind"] == "peft_lora":
            return _run_adapter(folder / "artifact", req["base_model_path"], inputs)
        if req["kind"] == "hf_encoder" and req.get("mode") == "layers":  # model selection: every layer
            from workers.sandbox.base_model_call import run_base_model_layers

            return run_base_model_layers(
                folder / "artifact", inputs, int(req.get("max_length") or MAX_TOKENS)
            )
        if req["kind"] == "hf_encoder":  # an uploaded base model: folder checks, load, pooled probe
            from workers.sandbox.base_model_call import run_base_model

            return run_base_model(folder / "artifact", inputs, str(req.get("pooling")))
        model = load_artifact(req["kind"], folder / "artifact")
        if req["kind"] == "onnx":
            return np.asarray(model(inputs))
        return _first_tensor(model(torch.from_numpy(inputs))).detach().cpu().numpy()


def warm(kind: str | None, base_model_path: str | None) -> None:
    """Do the slow one-off work in the fork server, so that calls (its forks) do not repeat it."""
    if kind == "onnx":  # imported once here; no session is kept, so no runtime thread exists when calls fork
        import onnx.checker  # noqa: F401
        import onnx.defs  # noqa: F401
        import onnxruntime  # noqa: F401

        from specs.packaging import onnx_run  # noqa: F401
    elif kind == "hf_encoder" or (kind == "peft_lora" and not base_model_path):  # a published base
        from workers.sandbox.base_model_call import warm as warm_base_model

        warm_base_model()
    elif kind == "peft_lora" and base_model_path:
        import peft  # noqa: F401 - imported once here rather than in every call

        _load_base(base_model_path)
    else:
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1)), buffer)
        load_torchscript(
            buffer.getvalue()
        )  # warms torch.jit and reads the operator allow-list before any fork


def run_call(req: dict[str, Any], folder: Path, answer: int) -> int:
    """Run one call's model on ``folder`` and write the ``.npy`` bytes of its output (or a JSON
    error) to the file descriptor ``answer``; returns the exit status (0, EXIT_ERROR, EXIT_MEMORY,
    EXIT_REFUSED)."""
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
        refused = isinstance(exc, InvalidPackageError)  # the upload breaks a format rule: its own code
        error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:2000]}
        if isinstance(exc, InvalidPackageError):
            error.update(code=exc.code, details=exc.details)
        try:
            _write_all(answer, json.dumps(error).encode())
            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110 - nothing more can be reported
            pass
        return EXIT_REFUSED if refused else EXIT_MEMORY if memory else EXIT_ERROR


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
