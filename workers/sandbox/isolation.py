"""How a sandboxed call is isolated: the bubblewrap command line, its seccomp filter, the probe.

Every call to uploaded code runs as a fresh process under ``bwrap`` (Debian's
``bubblewrap``, a maintained tool built for unprivileged sandboxes) in new user,
PID, mount, network, IPC and UTS namespaces. Inside it sees:

* read-only: ``/usr`` (system libraries), the Python prefix, the virtualenv, this
  repository's ``workers/`` and ``specs/`` code, ``/etc/ld.so.cache`` and the call's
  own ``in/`` folder (model + inputs) at ``/sandbox/in``;
* writable: only a size-limited tmpfs at ``/tmp`` (gone when the call ends);
* its own ``/proc`` (only its PID namespace), a minimal ``/dev``, no network
  interface but loopback, an environment built from ``ENV`` only;
* a seccomp filter that refuses the kernel interfaces a model never needs
  (``ptrace``, ``bpf``, ``mount``, ``unshare``/``setns``, keyrings, module loading, …).

When the worker runs as root and an unprivileged account can reach the Python
runtime, ``bwrap`` itself is started as uid/gid 65534 so that even an escape from the
namespaces lands in an unprivileged account (and ``RLIMIT_NPROC`` applies: the kernel
exempts uid 0 from it). Otherwise the namespaces still hold, and the status says so.

Why one process per call rather than a fork server: measured on this machine,
``bwrap`` costs ~25 ms and ``import torch`` ~1.4 s inside it; ``runner`` hides the
import by keeping one *spare* sandbox started ahead of the next call (it imports
torch while the worker does other work). A fork server shared by calls would need
hand-made nested namespaces to keep calls apart; a fresh ``bwrap`` per call gets
that from the tool, and killing it kills everything the call started (PID namespace).

Imports: the standard library only (no Django, no torch).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("workers", "specs")  # the child imports workers.sandbox.child (and checks that may live in specs/)
SANDBOX_CODE = "/sandbox/code"
SANDBOX_IN = "/sandbox/in"
TMPFS_BYTES = 256 * 2**20
NOBODY = 65534
ALLOW_UNISOLATED_ENV = "LWM_SANDBOX_ALLOW_UNISOLATED"

# The whole environment of the child: nothing of the worker's (database URL, broker URL,
# S3 keys, SECRET_KEY_FILE, ...) ever reaches uploaded code.
ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "LANG": "C.UTF-8",
    "PYTHONPATH": SANDBOX_CODE,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

# Refused with EPERM inside the sandbox: debugging/inspecting other processes, kernel
# extension points, namespace and mount changes, keyrings, io_uring (a frequent source of
# kernel bugs). ``clone3`` answers ENOSYS so that glibc falls back to ``clone``, whose
# namespace flags are refused anyway (no capabilities; ``--disable-userns``).
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init", "lookup_dcookie",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
    "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)
ENOSYS_SYSCALLS = ("clone3",)


class IsolationUnavailable(RuntimeError):
    """bubblewrap cannot set up the sandbox here (the reason is the message)."""


@dataclass(frozen=True)
class Isolation:
    """What this machine can enforce; ``ok`` False means uploaded code must not run."""

    ok: bool
    mode: str  # "bwrap" | "unisolated" (explicitly allowed) | "refused"
    reason: str = ""
    bwrap: str = ""
    drop_to_nobody: bool = False
    seccomp: bool = False
    guarantees: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "mode": self.mode, "reason": self.reason, "uid_drop": self.drop_to_nobody,
                "seccomp": self.seccomp, "guarantees": list(self.guarantees)}


def allow_unisolated() -> bool:
    """The loudly named development escape hatch (``settings.LWM_SANDBOX_ALLOW_UNISOLATED``)."""
    try:
        from django.conf import settings

        if settings.configured:
            return bool(getattr(settings, "LWM_SANDBOX_ALLOW_UNISOLATED", False))
    except ImportError:  # pragma: no cover - the runner is usable without Django
        pass
    return os.environ.get(ALLOW_UNISOLATED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# --- seccomp ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """The BPF program of the filter, compiled by libseccomp (None when the library is missing)."""
    name = ctypes.util.find_library("seccomp")
    if not name:
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, errno_action = 0x7FFF0000, 0x00050000  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(0)
    ctx = lib.seccomp_init(allow)
    if not ctx:
        return None
    try:
        for names, errno in ((DENIED_SYSCALLS, 1), (ENOSYS_SYSCALLS, 38)):  # EPERM, ENOSYS
            for syscall in names:
                number = lib.seccomp_syscall_resolve_name(syscall.encode())
                if number < 0:  # not on this architecture
                    continue
                if lib.seccomp_rule_add_array(ctx, errno_action | errno, number, 0, None) != 0:
                    return None
        read, write = os.pipe()
        try:
            if lib.seccomp_export_bpf(ctx, write) != 0:
                return None
            os.close(write)
            write = -1
            chunks = []
            while chunk := os.read(read, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)
    finally:
        lib.seccomp_release(ctx)


def seccomp_fd() -> int | None:
    """A fresh readable fd holding the BPF program (bwrap reads it to the end), or None."""
    program = seccomp_program()
    if not program:
        return None
    fd = os.memfd_create("lwm-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# --- the command line ---------------------------------------------------------------------------
def _python_dirs() -> tuple[Path, Path, Path]:
    """(interpreter prefix, virtualenv, the python executable inside the virtualenv)."""
    venv = Path(sys.prefix).resolve()
    return Path(sys.base_prefix).resolve(), venv, venv / "bin" / "python"


def _reachable_by_nobody(path: Path) -> bool:
    """Every folder above ``path`` can be traversed and ``path`` read by an unrelated account."""
    for part in [*reversed(path.parents), path]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH or (part == path and not mode & stat.S_IROTH):
            return False
    return True


def drop_to_nobody() -> bool:
    """As root, start bwrap as 65534 when that account can read everything the sandbox binds."""
    if os.geteuid() != 0:
        return False
    base, venv, _ = _python_dirs()
    return all(_reachable_by_nobody(p) for p in (base, venv, *(ROOT / d for d in CODE_DIRS)))


def bwrap_argv(bwrap: str, call_in: Path, command: list[str], *, seccomp: int | None, binds: tuple[str, ...] = ()) -> list[str]:
    """The bwrap command running ``command`` with ``call_in`` read-only at ``/sandbox/in``.

    ``binds`` are extra host paths shown read-only at the same path (e.g. a base model
    folder outside the virtualenv).
    """
    base, venv, _ = _python_dirs()
    argv = [
        bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox", "--clearenv",
    ]
    for key, value in ENV.items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), str(target)]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in dict.fromkeys([str(base), str(venv), *binds]):  # dict: keeps order, drops repeats
        argv += ["--ro-bind", path, path]
    for name in CODE_DIRS:
        argv += ["--ro-bind", str(ROOT / name), f"{SANDBOX_CODE}/{name}"]
    argv += ["--ro-bind", str(call_in), SANDBOX_IN, "--proc", "/proc", "--dev", "/dev",
             "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if seccomp is not None:
        argv += ["--seccomp", str(seccomp)]
    return [*argv, "--", *command]


def python_command(*args: str) -> list[str]:
    """The sandbox's Python: the virtualenv's interpreter, no user site, no bytecode writes."""
    return [str(_python_dirs()[2]), "-s", "-B", *args]


def preexec(drop: bool):
    """``preexec_fn`` for bwrap: as root with ``drop``, become 65534 (no groups) first."""
    def apply() -> None:
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
    return apply


# --- the probe -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def probe() -> Isolation:
    """Can a sandbox be set up here? Run bwrap once (cached for the process) and see."""
    bwrap = shutil.which("bwrap") or ""
    if not bwrap:
        return _refused("bubblewrap (bwrap) is not installed")
    drop = drop_to_nobody()
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    probe_dir = Path(__import__("tempfile").mkdtemp(prefix="lwm-sandbox-probe-", dir=scratch))
    fd = seccomp_fd()
    try:
        if drop:
            os.chmod(probe_dir, 0o755)
        started = time.monotonic()
        # What the probe checks: only loopback, its own PID namespace, only our environment.
        code = "import os,socket; print(','.join(n for _, n in socket.if_nameindex()), os.getpid(), ','.join(sorted(os.environ)))"
        argv = bwrap_argv(bwrap, probe_dir, python_command("-c", code), seccomp=fd)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={}, close_fds=True,
                                  pass_fds=(fd,) if fd is not None else (), preexec_fn=preexec(drop))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _refused(f"bwrap could not start: {exc}")
        seen = proc.stdout.split()
        if proc.returncode != 0 or len(seen) != 3:
            return _refused(f"bwrap failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        interfaces, pid, names = seen[0].split(","), int(seen[1]), set(seen[2].split(","))
        if interfaces != ["lo"] or pid > 2 or not names <= {*ENV, "LC_CTYPE", "PWD"}:
            return _refused(f"the sandbox did not isolate as expected: {proc.stdout.strip()!r}")
        guarantees = ("user-namespace", "pid-namespace", "mount-namespace", "no-network", "ipc-namespace",
                      "uts-namespace", "clean-environment", "read-only-runtime", "private-tmpfs")
        if fd is not None:
            guarantees += ("seccomp",)
        if drop:
            guarantees += ("uid-65534",)
        return Isolation(ok=True, mode="bwrap", bwrap=bwrap, drop_to_nobody=drop, seccomp=fd is not None,
                         guarantees=guarantees, reason=f"probe took {time.monotonic() - started:.2f} s")
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(probe_dir, ignore_errors=True)


def _refused(reason: str) -> Isolation:
    if allow_unisolated():
        return Isolation(ok=True, mode="unisolated", reason=f"{reason}; running UNISOLATED because {ALLOW_UNISOLATED_ENV}=true")
    return Isolation(ok=False, mode="refused", reason=reason)


def isolation_status() -> dict[str, Any]:
    """The sandbox part of /healthz: whether uploaded code can run, how isolated, and if not why."""
    status = probe().as_dict()
    if status["mode"] == "unisolated":
        status["warning"] = f"uploaded models run WITHOUT isolation ({ALLOW_UNISOLATED_ENV}=true): development only"
    return status
