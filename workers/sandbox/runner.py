"""Run an uploaded model on inputs in an isolated, limited process: ``run_model``.

What the sandbox guarantees, for each call (details in ``isolation.py`` and docs/security.md):

* the upload runs in a fork of a fork server that runs under bubblewrap (``zygote``),
  never in the worker; each fork enters its own user, PID, mount, network (empty), IPC
  and UTS namespaces (``namespaces``) with no capabilities and a seccomp filter, an
  environment built from an allow-list, a read-only view of the Python runtime and of
  this call's model and inputs only, and a private size-limited tmpfs as its only
  writable place;
* one fork (and namespace set) per call, one call at a time per worker process: a call
  cannot see another call's files or processes, and when it returns everything it
  started is dead (its PID namespace ends);
* limits: address space (``memory_mb`` on top of torch's own mapping), CPU seconds,
  wall clock (the call is SIGKILLed), size of written files, open files, processes,
  no core dumps;
* fail closed: when bubblewrap cannot isolate (``isolation.probe``), uploaded code does
  not run (``SandboxIsolationUnavailable``) unless ``LWM_SANDBOX_ALLOW_UNISOLATED`` is
  set, which logs a warning on every call;
* no pickle: TorchScript through ``specs.packaging.torchscript.load_torchscript`` (no
  load-time code, operators allow-listed before any call), LoRA weights through
  safetensors (PEFT); torch.export is refused (its loader unpickles); inputs and outputs
  are ``.npy`` bytes read with ``allow_pickle=False``;
* the log handed back to the uploader is bounded and scrubbed of server paths.

What it does not guarantee: isolation from kernel exploits or CPU side channels.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.sandbox import isolation
from workers.sandbox.isolation import ROOT, SANDBOX_CALLS, SANDBOX_CODE, SANDBOX_IN, Isolation

log = logging.getLogger(__name__)
KINDS = ("torchscript", "peft_lora", "onnx")  # torch.export (.pt2) is refused: its loader unpickles with full pickle
LOG_CHARS = 4000
EXIT_ERROR, EXIT_MEMORY, EXIT_SETUP, EXIT_REFUSED = 3, 4, 5, 6
SIGKILL, SIGXCPU = 9, 24


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed call."""

    memory_mb: int = 2048
    cpu_seconds: int = 60
    wall_seconds: float = 120.0
    file_size_mb: int = 64
    max_open_files: int = 256
    max_processes: int = 64


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


class SandboxRefused(SandboxError):
    """The artifact broke a format rule checked inside the call (e.g. a TorchScript operator
    outside the allow-list); ``code`` is the rule's own ``upload:user:*`` code."""

    code = "upload:user:unsafe-operator"

    def __init__(self, message: str, *, code: str, details: dict[str, Any] | None = None, log: str = ""):
        super().__init__(message, log=log)
        self.code, self.details = code, details or {}


class SandboxUnavailable(SandboxError):
    """Our side failed (the sandbox could not start or answer): worth a retry."""

    code = "sandbox:unavailable"


class SandboxIsolationUnavailable(SandboxUnavailable):
    """This machine cannot isolate uploaded code (bubblewrap missing or refused): nothing runs."""

    code = "sandbox:unavailable-isolation"


# --- the call's folder ---------------------------------------------------------------------------
_parent: tuple[int, Path] | None = None


def _private_parent(iso: Isolation) -> Path:
    """This process's own folder for call folders (the fork server's ``/calls``): 0700, owned
    by 65534 when bwrap runs as that account; call folders have random names."""
    global _parent
    if _parent is None or _parent[0] != os.getpid():
        path = Path(tempfile.mkdtemp(prefix=f"lwm-sandbox-{os.getuid()}-"))
        atexit.register(shutil.rmtree, path, True)
        _parent = (os.getpid(), path)
    path = _parent[1]
    if iso.drop_to_nobody and path.stat().st_uid != isolation.NOBODY:
        os.chown(path, isolation.NOBODY, isolation.NOBODY)
    return path


def _stage(folder: Path, artifact: str | Path | bytes | Mapping[str, bytes], inputs: np.ndarray) -> None:
    target = folder / "artifact"
    if isinstance(artifact, Mapping):
        target.mkdir(mode=0o700)
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
    np.save(folder / "inputs.npy", inputs, allow_pickle=False)


# --- the fork server -----------------------------------------------------------------------------
class _Zygote:
    """One fork server per worker process (inside bwrap), started on first use and restarted if it dies."""

    def __init__(self, iso: Isolation, binds: tuple[str, ...]):
        self.iso, self.binds, self.owner = iso, binds, os.getpid()
        self.calls = _private_parent(iso)
        self.log_path = self.calls / "server.log"
        if iso.mode == "bwrap":
            command = isolation.python_command("-m", "workers.sandbox.zygote", "--calls", SANDBOX_CALLS)
            argv, env, cwd = isolation.bwrap_argv(iso.bwrap, self.calls, command, binds=binds), {}, "/"
        else:  # explicitly allowed development mode: the same server, no namespaces
            argv = isolation.python_command("-m", "workers.sandbox.zygote", "--calls", str(self.calls), "--unisolated")
            env, cwd = {**isolation.ENV, "PYTHONPATH": str(ROOT), "HOME": str(self.calls), "TMPDIR": str(self.calls)}, str(self.calls)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=cwd,
                close_fds=True, start_new_session=True, preexec_fn=isolation.preexec(iso.drop_to_nobody),
            )

    def fits(self, iso: Isolation, binds: tuple[str, ...]) -> bool:
        return self.owner == os.getpid() and self.iso == iso and set(binds) <= set(self.binds) and self.proc.poll() is None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: reported below
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise SandboxUnavailable(f"the sandbox server did not answer: {scrub_log(self.read_log())[-500:]}")
        return json.loads(line)

    def read_log(self) -> str:
        return _tail(self.log_path)

    def close(self) -> None:
        if self.owner == os.getpid():
            self.proc.kill()
            self.proc.wait()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4 * LOG_CHARS))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


_lock = threading.Lock()
_zygote: _Zygote | None = None


def _ask(iso: Isolation, request: dict[str, Any], binds: tuple[str, ...], timeout: float) -> dict[str, Any]:
    global _zygote
    with _lock:
        if _zygote is None or not _zygote.fits(iso, binds):
            if _zygote is not None:
                binds = tuple(dict.fromkeys([*_zygote.binds, *binds]))
                _zygote.close()
            _zygote = _Zygote(iso, binds)
        return _zygote.ask(request, timeout)


def _binds_for(base_model_path: str | None) -> tuple[str, ...]:
    """A base model outside the runtime the server already sees is shown to it read-only."""
    if not base_model_path:
        return ()
    path = Path(base_model_path).resolve()
    base, venv, _ = isolation._python_dirs()
    return () if path.is_relative_to(venv) or path.is_relative_to(base) else (str(path),)


# --- logs ---------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def scrub_log(text: str, call_dir: Path | None = None) -> str:
    """The last ``LOG_CHARS`` of a child's log without server paths or control characters."""
    base, venv, _ = isolation._python_dirs()
    replacements = [(str(call_dir), "<call>")] if call_dir else []
    replacements += [(SANDBOX_IN, "<call>"), (SANDBOX_CALLS, "<calls>"), (SANDBOX_CODE, "<code>"), (str(ROOT), "<code>"),
                     (str(venv), "<venv>"), (str(base), "<python>"), (str(Path.home()), "~"),
                     (tempfile.gettempdir() + "/", "<tmp>/")]
    for path, label in sorted(replacements, key=lambda pair: -len(pair[0])):
        if path and path != "/":
            text = text.replace(path, label)
    return _CONTROL.sub("?", text)[-LOG_CHARS:]


# --- the call -----------------------------------------------------------------------------------
def _raise_for(result: dict[str, Any], answer: bytes, call: Path, limits: SandboxLimits) -> None:
    log_text = scrub_log(_tail(call / "child.log"), call)
    if result["status"] == "timeout":
        raise SandboxTimeout(f"the model ran longer than {limits.wall_seconds} s (wall clock) and was killed", log=log_text)
    if result["status"] == "setup":
        raise SandboxUnavailable(f"the sandbox could not prepare the model's runtime: {scrub_log(result.get('message', ''))}")
    status = int(result["code"])
    if status == EXIT_SETUP:
        raise SandboxUnavailable(f"the sandbox could not set up the call: {log_text[-500:]}")
    if status - 128 in (SIGXCPU, SIGKILL):
        raise SandboxCpuExceeded(f"the model used more than {limits.cpu_seconds} s of CPU and was killed", log=log_text)
    try:
        error = json.loads(answer.decode())
        detail = f"{error.get('type', 'error')}: {error.get('message', '')}"
    except (ValueError, UnicodeDecodeError, AttributeError):
        error, detail = {}, f"exit status {status}"
    detail = scrub_log(detail, call)
    if status == EXIT_REFUSED and str(error.get("code", "")).startswith("upload:user:"):
        # A format rule checked in the call (e.g. the operator allow-list): the rule's own code, no model log.
        raise SandboxRefused(scrub_log(str(error.get("message", "")), call)[:500], code=error["code"],
                             details=error.get("details") or {})
    if status == EXIT_MEMORY:
        raise SandboxMemoryExceeded(f"the model needed more than {limits.memory_mb} MiB of memory ({detail[:300]})", log=log_text)
    raise SandboxCrashed(f"the model crashed in the sandbox: {detail[:500]}", log=log_text)


def _isolation() -> Isolation:
    iso = isolation.probe()
    if not iso.ok:
        raise SandboxIsolationUnavailable(
            f"{SandboxIsolationUnavailable.code}: uploaded models are not run because the sandbox cannot isolate them "
            f"here ({iso.reason}); install bubblewrap and allow user namespaces (docs/security.md)")
    if iso.mode == "unisolated":
        log.warning("running an uploaded model WITHOUT isolation (%s=true): %s", isolation.ALLOW_UNISOLATED_ENV, iso.reason)
    return iso


def run_model(
    artifact: str | Path | bytes | Mapping[str, bytes],
    inputs: np.ndarray,
    *,
    kind: str = "torchscript",
    limits: SandboxLimits | None = None,
    base_model_path: str | None = None,
) -> np.ndarray:
    """Run ``artifact`` on ``inputs`` in the sandbox and return its output array.

    ``artifact`` is a file path or bytes (TorchScript ``.pt`` / ONNX
    ``.onnx``, run by ONNX Runtime with one thread: ``specs.packaging.onnx_run``),
    or, for ``kind="peft_lora"``, a folder or ``{file name: bytes}`` with
    ``adapter_config.json`` and ``adapter_model.safetensors``; then ``inputs`` is an
    array of str and the output is the base model's mean-pooled, L2-normalised
    last hidden state with the adapter applied, (n, hidden) float32, and
    ``base_model_path`` is the base model's local folder (shown read-only to the sandbox).

    Raises
    ------
    SandboxTimeout, SandboxCpuExceeded, SandboxMemoryExceeded, SandboxCrashed
        The model misbehaved (a user error).
    SandboxRefused
        The artifact was refused before it ran (``code``: ``upload:user:unsafe-operator``...).
    SandboxOutputInvalid
        The output is not a numeric array.
    SandboxIsolationUnavailable
        This machine cannot isolate uploaded code; nothing was run.
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
    iso = _isolation()
    call = Path(tempfile.mkdtemp(dir=_private_parent(iso)))  # 0700, one per call
    try:
        (call / "in").mkdir(mode=0o700)
        _stage(call / "in", artifact, inputs)
        if iso.drop_to_nobody:
            for path in [call, *call.rglob("*")]:
                os.chown(path, isolation.NOBODY, isolation.NOBODY)
        request = {"call": call.name, "kind": kind, "limits": asdict(limits), "base_model_path": base_model_path}
        # The server may first import torch.export or load a base model; allow for it beyond the call's own limit.
        result = _ask(iso, request, _binds_for(base_model_path), timeout=limits.wall_seconds + 180.0)
        answer = (call / "answer").read_bytes() if (call / "answer").exists() else b""
        if result["status"] != "exit" or result["code"] != 0:
            _raise_for(result, answer, call, limits)
        try:
            out = np.load(io.BytesIO(answer), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise SandboxOutputInvalid(f"the model's output could not be read: {exc}") from exc
        if out.dtype.kind not in "biuf":
            raise SandboxOutputInvalid(f"the model returned a {out.dtype} array, not numbers")
        return out
    finally:
        shutil.rmtree(call, ignore_errors=True)


def sandbox_info() -> dict[str, Any]:
    """What the sandbox can enforce on this machine (shown in /healthz and the checks log)."""
    return isolation.isolation_status()
