"""The sandbox's fork server: imports torch once, then forks one limited child per request.

Run as ``python -m workers.sandbox.zygote``; it reads one JSON request per line on
stdin and answers one JSON line on its original stdout. Uploaded code never runs in
this process, only in the forked children, each of which (before touching the
upload) starts a new session, leaves the network namespace (when root), sets
resource limits, drops to uid/gid 65534 (when root) and then loads the artifact
with ``torch.jit.load`` / ``torch.export.load`` / PEFT safetensors only.
Imports: the standard library, numpy and torch (transformers/peft lazily) — no Django.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

CLONE_NEWNET = 0x40000000
NOBODY = 65534
EXIT_ERROR, EXIT_MEMORY = 3, 4
_BASES: dict[str, Any] = {}
_WARM: set[str] = set()


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _isolate(limits: dict[str, Any]) -> list[str]:
    """Apply the limits to this (child) process; return the guarantees actually in force."""
    applied = []
    if limits.get("isolate_network") and os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) == 0:
            applied.append("network")
    memory = _vm_size() + int(limits["memory_mb"]) * 2**20  # on top of what the zygote already maps
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    fsize = int(limits["file_size_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(limits["max_open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    applied += ["memory", "cpu", "file-size", "open-files"]
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))  # counted per (now unprivileged) uid
        applied.append("unprivileged")
    return applied


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor")
    return out


def _run_adapter(req: dict[str, Any], inputs: np.ndarray) -> np.ndarray:
    from peft import PeftModel

    tokenizer, base = _BASES[req["base_model_path"]]
    model = PeftModel.from_pretrained(base, str(Path(req["workdir"]) / "artifact"), is_trainable=False).eval()
    batch = tokenizer([str(t) for t in inputs.tolist()], padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def _execute(req: dict[str, Any]) -> np.ndarray:
    workdir = Path(req["workdir"])
    inputs = np.load(workdir / "inputs.npy", allow_pickle=False)
    with torch.no_grad():
        if req["kind"] == "peft_lora":
            return _run_adapter(req, inputs)
        if req["kind"] == "onnx":
            from specs.packaging.onnx_run import load_onnx  # imported by _preload, before the uid drop

            return load_onnx((workdir / "artifact").read_bytes())(inputs)
        if req["kind"] == "torchscript":
            model = torch.jit.load(str(workdir / "artifact"), map_location="cpu")
        elif req["kind"] == "torch_export":
            model = torch.export.load(str(workdir / "artifact")).module()
        else:
            raise ValueError(f"unknown artifact kind {req['kind']!r}")
        return _first_tensor(model(torch.from_numpy(inputs))).detach().cpu().numpy()


def _child(req: dict[str, Any]) -> None:
    os.setsid()
    workdir = Path(req["workdir"])
    log = os.open(workdir / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 0
    try:
        applied = _isolate(req["limits"])
        torch.set_num_threads(1)
        out = _execute(req)
        np.save(workdir / "outputs.npy", np.ascontiguousarray(out), allow_pickle=False)
        (workdir / "applied.json").write_text(json.dumps(applied))
    except BaseException as exc:  # noqa: BLE001 - the child reports every failure, then dies
        text = f"{type(exc).__name__}: {exc}"
        memory = isinstance(exc, MemoryError) or "can't allocate memory" in text or "std::bad_alloc" in text
        code = EXIT_MEMORY if memory else EXIT_ERROR
        try:
            (workdir / "error.json").write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)[:2000]}))
            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110 - nothing more can be reported
            pass
    os._exit(code)


def _wait(pid: int, wall: float) -> dict[str, Any]:
    deadline = time.monotonic() + wall
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            _kill_group(pid)
            os.waitpid(pid, 0)
            return {"status": "timeout"}
        time.sleep(0.005)
    _kill_group(pid)  # anything the model spawned dies with it
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"status": {signal.SIGXCPU: "cpu", signal.SIGKILL: "killed"}.get(sig, "signal"), "signal": sig}
    code = os.WEXITSTATUS(status)
    return {"status": {0: "ok", EXIT_MEMORY: "memory"}.get(code, "error"), "exit_code": code}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _preload(req: dict[str, Any]) -> None:
    if req["kind"] == "torch_export" and "torch_export" not in _WARM:
        _warm_export()
    if req["kind"] == "onnx" and "onnx" not in _WARM:
        _warm_onnx()
    path = req.get("base_model_path")
    if req["kind"] == "peft_lora" and path and path not in _BASES:
        import peft  # noqa: F401 - children drop to an unprivileged uid that may not read site-packages
        from peft import PeftModel  # noqa: F401
        from transformers import AutoModel, AutoTokenizer

        # Loaded from our own trusted folder, once; children share it copy-on-write.
        _BASES[path] = (AutoTokenizer.from_pretrained(path, local_files_only=True),
                        AutoModel.from_pretrained(path, local_files_only=True).eval())


def _warm_export() -> None:
    """Run torch.export once here: children drop to a uid that may not read the modules it imports lazily."""
    model = torch.export.export(torch.nn.Linear(1, 1), (torch.zeros(1, 1),))
    buffer = io.BytesIO()
    torch.export.save(model, buffer)
    buffer.seek(0)
    torch.export.load(buffer)
    _WARM.add("torch_export")


def _warm_onnx() -> None:
    """Import ONNX Runtime and onnx here (children may not read site-packages after the uid drop);
    no session is kept, so no runtime thread exists when children fork."""
    import onnx.checker  # noqa: F401
    import onnx.defs  # noqa: F401
    import onnxruntime  # noqa: F401

    from specs.packaging import onnx_run  # noqa: F401

    _WARM.add("onnx")


def _tiny_script() -> io.BytesIO:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1)), buffer)
    buffer.seek(0)
    return buffer


def serve() -> None:
    """Answer requests until stdin closes (the parent worker exited)."""
    torch.jit.load(_tiny_script())
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter goes to stderr, never into the protocol
    for line in sys.stdin:
        req = json.loads(line)
        started = time.monotonic()
        try:
            _preload(req)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as our failure
            answer.write(json.dumps({"status": "setup", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
            continue
        pid = os.fork()
        if pid == 0:
            _child(req)
        result = _wait(pid, float(req["limits"]["wall_seconds"]))
        result["seconds"] = round(time.monotonic() - started, 4)
        answer.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve()
