"""Run an uploaded model on inputs in a limited child process: ``run_model``.

What the sandbox guarantees, for each call (see ``zygote.py``):

* the upload runs in a forked child of a fork server, never in the worker: a
  crash, a hang or an allocation failure kills only the child;
* limits: address space (``memory_mb`` on top of the server's own mapping),
  CPU seconds (SIGXCPU, then SIGKILL one second later), wall clock (the whole
  process group is SIGKILLed), size of written files, open files, no core dumps;
* a new session/process group, so nothing it spawns outlives it;
* when the worker runs as root: a fresh, empty network namespace (no network
  at all) and uid/gid 65534 with no supplementary groups;
* no pickle: TorchScript through ``torch.jit.load``, torch.export through
  ``torch.export.load``, LoRA weights through safetensors (PEFT); inputs and
  outputs are ``.npy`` files read with ``allow_pickle=False``.

What it does not guarantee: isolation from kernel exploits or side channels (it
is not a VM or seccomp jail); network isolation and the uid drop when the worker
is not root (``result.applied`` lists what was in force); the TorchScript
deserialiser itself is trusted code. Run workers in a container for more.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("torchscript", "torch_export", "peft_lora", "onnx")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed call."""

    memory_mb: int = 2048
    cpu_seconds: int = 60
    wall_seconds: float = 120.0
    file_size_mb: int = 64
    max_open_files: int = 256
    isolate_network: bool = True


class SandboxError(Exception):
    """The model failed in the sandbox; ``code`` says how (stable string)."""

    code = "sandbox:crashed"

    def __init__(self, message: str, *, log: str = ""):
        super().__init__(message)
        self.message, self.log = message, log


class SandboxCrashed(SandboxError):
    code = "sandbox:crashed"


class SandboxTimeout(SandboxError):
    code = "sandbox:timeout"


class SandboxCpuExceeded(SandboxError):
    code = "sandbox:cpu-limit"


class SandboxMemoryExceeded(SandboxError):
    code = "sandbox:memory-limit"


class SandboxOutputInvalid(SandboxError):
    code = "sandbox:bad-output"


class SandboxUnavailable(SandboxError):
    """Our side failed (the fork server could not start or answer): worth a retry."""

    code = "sandbox:unavailable"


class _Zygote:
    """One fork server per worker process, started on first use and restarted if it dies."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.pid = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.sandbox.zygote"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.proc.poll() is None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise SandboxUnavailable("the sandbox server did not answer")
        return json.loads(line)


_lock = threading.Lock()
_zygote: _Zygote | None = None


def _ask(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    global _zygote
    with _lock:
        if _zygote is None or not _zygote.alive():
            _zygote = _Zygote()
        return _zygote.ask(request, timeout)


def _stage(workdir: Path, artifact: str | Path | bytes | Mapping[str, bytes], inputs: np.ndarray) -> None:
    target = workdir / "artifact"
    if isinstance(artifact, Mapping):
        target.mkdir()
        for name, data in artifact.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"adapter file name {name!r} is not a plain file name")
            (target / name).write_bytes(data)
    elif isinstance(artifact, bytes):
        target.write_bytes(artifact)
    elif Path(artifact).is_dir():
        shutil.copytree(artifact, target)
    else:
        shutil.copyfile(artifact, target)
    np.save(workdir / "inputs.npy", inputs, allow_pickle=False)
    for path in [workdir, *workdir.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o644)  # the child runs as an unprivileged uid


def _raise_for(result: dict[str, Any], workdir: Path, limits: SandboxLimits) -> None:
    log = (workdir / "child.log").read_text(errors="replace")[-4000:] if (workdir / "child.log").exists() else ""
    status = result["status"]
    if status == "timeout":
        raise SandboxTimeout(f"the model ran longer than {limits.wall_seconds} s (wall clock) and was killed", log=log)
    if status in ("cpu", "killed"):
        raise SandboxCpuExceeded(f"the model used more than {limits.cpu_seconds} s of CPU and was killed", log=log)
    error = json.loads((workdir / "error.json").read_text()) if (workdir / "error.json").exists() else {}
    detail = f"{error.get('type', 'error')}: {error.get('message', '')}".strip() if error else f"exit status {result}"
    if status == "memory":
        raise SandboxMemoryExceeded(f"the model needed more than {limits.memory_mb} MiB of memory ({detail[:300]})", log=log)
    if status == "setup":
        raise SandboxUnavailable(f"the sandbox could not prepare the base model: {result.get('message')}")
    raise SandboxCrashed(f"the model crashed in the sandbox: {detail[:500]}", log=log)


def run_model(
    artifact: str | Path | bytes | Mapping[str, bytes],
    inputs: np.ndarray,
    *,
    kind: str = "torchscript",
    limits: SandboxLimits | None = None,
    base_model_path: str | None = None,
) -> np.ndarray:
    """Run ``artifact`` on ``inputs`` in the sandbox and return its output array.

    ``artifact`` is a file path or bytes (TorchScript ``.pt`` / torch.export ``.pt2`` / ONNX
    ``.onnx``, run by ONNX Runtime with one thread: ``specs.packaging.onnx_run``),
    or, for ``kind="peft_lora"``, a folder or ``{file name: bytes}`` with
    ``adapter_config.json`` and ``adapter_model.safetensors``; then ``inputs`` is an
    array of str and the output is the base model's mean-pooled, L2-normalised
    last hidden state with the adapter applied, (n, hidden) float32, and
    ``base_model_path`` is the base model's local folder.

    Raises
    ------
    SandboxTimeout, SandboxCpuExceeded, SandboxMemoryExceeded, SandboxCrashed
        The model misbehaved (a user error).
    SandboxOutputInvalid
        The output is not a numeric array.
    SandboxUnavailable
        Our side failed (transient).
    ValueError
        Unknown ``kind`` or inputs that cannot be saved without pickle.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    limits = limits or SandboxLimits()
    inputs = np.asarray(inputs)
    if inputs.dtype.kind == "O":
        raise ValueError("inputs must be a numeric or string array (object arrays need pickle)")
    workdir = Path(tempfile.mkdtemp(prefix="lwm-sandbox-"))
    try:
        _stage(workdir, artifact, inputs)
        request = {"workdir": str(workdir), "kind": kind, "limits": asdict(limits), "base_model_path": base_model_path}
        # The server may first load a base model; allow for it beyond the child's own wall limit.
        result = _ask(request, timeout=limits.wall_seconds + 120.0)
        if result["status"] != "ok":
            _raise_for(result, workdir, limits)
        try:
            out = np.load(workdir / "outputs.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SandboxOutputInvalid(f"the model's output could not be read: {exc}") from exc
        if out.dtype.kind not in "biuf":
            raise SandboxOutputInvalid(f"the model returned a {out.dtype} array, not numbers")
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sandbox_info() -> dict[str, Any]:
    """What the sandbox can enforce on this machine (shown in the checks log)."""
    return {"network_isolation": os.geteuid() == 0, "uid_drop": os.geteuid() == 0}
