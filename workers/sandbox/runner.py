"""Run an uploaded model on inputs in an isolated, limited process: ``run_model``.

What the sandbox guarantees, for each call (details in ``isolation.py`` and docs/security.md):

* the upload runs in a fresh process under bubblewrap, never in the worker: new user,
  PID, mount, network (empty), IPC and UTS namespaces, a seccomp filter, an environment
  built from an allow-list, a read-only view of the Python runtime and of this call's
  model and inputs only, and a private size-limited tmpfs as its only writable place;
* one process (and namespace set) per call: a call cannot see another call's files or
  processes, and when it returns everything it started is dead (its PID namespace ends);
* limits: address space (``memory_mb`` on top of torch's own mapping), CPU seconds,
  wall clock (the sandbox is SIGKILLed), size of written files, open files, processes,
  no core dumps;
* fail closed: when bubblewrap cannot isolate (``isolation.probe``), uploaded code does
  not run (``SandboxIsolationUnavailable``) unless ``LWM_SANDBOX_ALLOW_UNISOLATED`` is
  set, which logs a warning on every call;
* no pickle: TorchScript through ``torch.jit.load``, torch.export through
  ``torch.export.load``, LoRA weights through safetensors (PEFT); inputs and outputs are
  ``.npy`` bytes read with ``allow_pickle=False``;
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
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.sandbox import isolation
from workers.sandbox.isolation import ROOT, SANDBOX_CODE, SANDBOX_IN, Isolation

log = logging.getLogger(__name__)
KINDS = ("torchscript", "torch_export", "peft_lora")
LOG_CHARS = 4000
READY_SECONDS = 180.0  # importing torch (and a base model) in a fresh sandbox
EXIT_ERROR, EXIT_MEMORY = 3, 4
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


class SandboxUnavailable(SandboxError):
    """Our side failed (the sandbox could not start or answer): worth a retry."""

    code = "sandbox:unavailable"


class SandboxIsolationUnavailable(SandboxUnavailable):
    """This machine cannot isolate uploaded code (bubblewrap missing or refused): nothing runs."""

    code = "sandbox:unavailable-isolation"


# --- the call's folder ---------------------------------------------------------------------------
_parent: tuple[int, Path] | None = None


def _private_parent(iso: Isolation) -> Path:
    """This process's own folder for call folders: 0700 (0711 when bwrap runs as 65534,
    which must traverse it to bind its call's folder; names are random and not listable)."""
    global _parent
    if _parent is None or _parent[0] != os.getpid():
        path = Path(tempfile.mkdtemp(prefix=f"lwm-sandbox-{os.getuid()}-"))
        atexit.register(shutil.rmtree, path, True)
        _parent = (os.getpid(), path)
    path = _parent[1]
    path.chmod(0o711 if iso.drop_to_nobody else 0o700)
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


# --- one sandboxed process ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Hint:
    """What a spare warms up before its call (the previous call's kind and base model)."""

    kind: str
    base_model_path: str | None


class _Sandbox:
    """One sandbox process, started ahead of its (single) call, waiting for its request."""

    def __init__(self, iso: Isolation, hint: _Hint):
        self.iso, self.hint, self.owner = iso, hint, os.getpid()
        self.dir = Path(tempfile.mkdtemp(dir=_private_parent(iso)))  # 0700, one per call
        self.input = self.dir / "in"
        self.input.mkdir(mode=0o700)
        if iso.drop_to_nobody:
            for path in (self.dir, self.input):
                os.chown(path, isolation.NOBODY, isolation.NOBODY)
        self.log_path = self.dir / "child.log"
        args = ["--warm", hint.kind] + (["--base", hint.base_model_path] if hint.base_model_path else [])
        fd = None
        if iso.mode == "bwrap":
            fd = isolation.seccomp_fd()
            binds = (hint.base_model_path,) if hint.base_model_path else ()
            argv = isolation.bwrap_argv(iso.bwrap, self.input, isolation.python_command(
                "-m", "workers.sandbox.child", "--in", SANDBOX_IN, *args), seccomp=fd, binds=binds)
            env, cwd = {}, "/"
        else:  # explicitly allowed development mode: same child, same environment, no namespaces
            argv = isolation.python_command("-m", "workers.sandbox.child", "--in", str(self.input), *args, "--no-process-limit")
            env, cwd = {**isolation.ENV, "PYTHONPATH": str(ROOT), "HOME": str(self.dir), "TMPDIR": str(self.dir)}, str(self.dir)
        with open(self.log_path, "wb") as log_file:
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, bufsize=0, env=env, cwd=cwd,
                    close_fds=True, pass_fds=(fd,) if fd is not None else (), start_new_session=True,
                    preexec_fn=isolation.preexec(iso.drop_to_nobody),
                )
            finally:
                if fd is not None:
                    os.close(fd)

    def usable(self, iso: Isolation, hint: _Hint) -> bool:
        return self.owner == os.getpid() and self.hint == hint and self.iso == iso and self.proc.poll() is None

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        seen, deadline = b"", time.monotonic() + READY_SECONDS
        while not seen.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.proc.stdout.fileno(), 1) if ready else b""
            if not chunk:
                raise SandboxUnavailable(f"the sandbox did not start: {scrub_log(self.read_log(), self.dir)[-500:]}")
            seen += chunk

    def call(self, request: dict[str, Any], wall: float) -> tuple[int | None, bytes]:
        """Send the request; (exit status, answer bytes), status None when the wall clock ran out."""
        try:
            out, _ = self.proc.communicate((json.dumps(request) + "\n").encode(), timeout=wall)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, b""
        return self.proc.returncode, out

    def read_log(self) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - 4 * LOG_CHARS))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        # bwrap's --die-with-parent and PID namespace: killing it kills all the call started.
        # In unisolated mode only the session is killed (a setsid grandchild can escape it).
        for target in (lambda: os.killpg(self.proc.pid, SIGKILL), self.proc.kill):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_lock = threading.Lock()
_spare: _Sandbox | None = None


def _take(iso: Isolation, hint: _Hint) -> _Sandbox:
    """The spare if it fits this call, else a new sandbox."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None and spare.usable(iso, hint):
        return spare
    if spare is not None and spare.owner == os.getpid():
        spare.close()
    return _Sandbox(iso, hint)


def _prepare_spare(iso: Isolation, hint: _Hint) -> None:
    """Start the next call's sandbox now: it imports torch while the worker goes on."""
    global _spare
    try:
        fresh = _Sandbox(iso, hint)
    except OSError:
        log.exception("could not start a spare sandbox")
        return
    with _lock:
        old, _spare = _spare, fresh
    if old is not None and old.owner == os.getpid():
        old.close()


# --- logs ---------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def scrub_log(text: str, call_dir: Path | None = None) -> str:
    """The last ``LOG_CHARS`` of a child's log without server paths or control characters."""
    base, venv, _ = isolation._python_dirs()
    replacements = [(str(call_dir), "<call>")] if call_dir else []
    replacements += [(SANDBOX_IN, "<call>"), (SANDBOX_CODE, "<code>"), (str(ROOT), "<code>"),
                     (str(venv), "<venv>"), (str(base), "<python>"), (str(Path.home()), "~"),
                     (tempfile.gettempdir() + "/", "<tmp>/")]
    for path, label in sorted(replacements, key=lambda pair: -len(pair[0])):
        if path and path != "/":
            text = text.replace(path, label)
    return _CONTROL.sub("?", text)[-LOG_CHARS:]


# --- the call -----------------------------------------------------------------------------------
def _raise_for(status: int | None, answer: bytes, sandbox: _Sandbox, limits: SandboxLimits) -> None:
    log_text = scrub_log(sandbox.read_log(), sandbox.dir)
    if status is None:
        raise SandboxTimeout(f"the model ran longer than {limits.wall_seconds} s (wall clock) and was killed", log=log_text)
    signal_number = -status if status < 0 else status - 128 if status > 128 else 0
    if signal_number in (SIGXCPU, SIGKILL):
        raise SandboxCpuExceeded(f"the model used more than {limits.cpu_seconds} s of CPU and was killed", log=log_text)
    try:
        error = json.loads(answer.decode())
        detail = f"{error.get('type', 'error')}: {error.get('message', '')}"
    except (ValueError, UnicodeDecodeError, AttributeError):
        detail = f"exit status {status}"
    detail = scrub_log(detail, sandbox.dir)
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

    ``artifact`` is a file path or bytes (TorchScript ``.pt`` / torch.export ``.pt2``),
    or, for ``kind="peft_lora"``, a folder or ``{file name: bytes}`` with
    ``adapter_config.json`` and ``adapter_model.safetensors``; then ``inputs`` is an
    array of str and the output is the base model's mean-pooled, L2-normalised
    last hidden state with the adapter applied, (n, hidden) float32, and
    ``base_model_path`` is the base model's local folder (shown read-only to the sandbox).

    Raises
    ------
    SandboxTimeout, SandboxCpuExceeded, SandboxMemoryExceeded, SandboxCrashed
        The model misbehaved (a user error).
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
    hint = _Hint(kind, base_model_path if kind == "peft_lora" else None)
    sandbox = _take(iso, hint)
    try:
        _stage(sandbox.input, artifact, inputs)
        if iso.drop_to_nobody:
            for path in sandbox.input.rglob("*"):
                os.chown(path, isolation.NOBODY, isolation.NOBODY)
        sandbox.wait_ready()
        status, answer = sandbox.call({"kind": kind, "limits": asdict(limits), "base_model_path": base_model_path},
                                      limits.wall_seconds)
        if status != 0:
            _raise_for(status, answer, sandbox, limits)
        try:
            out = np.load(io.BytesIO(answer), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise SandboxOutputInvalid(f"the model's output could not be read: {exc}") from exc
        if out.dtype.kind not in "biuf":
            raise SandboxOutputInvalid(f"the model returned a {out.dtype} array, not numbers")
        return out
    finally:
        sandbox.close()
        _prepare_spare(iso, hint)


def sandbox_info() -> dict[str, Any]:
    """What the sandbox can enforce on this machine (shown in /healthz and the checks log)."""
    return isolation.isolation_status()
