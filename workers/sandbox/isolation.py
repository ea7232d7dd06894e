"""How uploaded code is isolated: the bubblewrap sandbox of the fork server, its seccomp filter, the probe.

Two layers (measured choice, see "Why" below):

1. The fork server (``zygote``) runs under ``bwrap`` (Debian's ``bubblewrap``, a maintained
   tool built for unprivileged sandboxes) in new user, PID, mount, network, IPC and UTS
   namespaces, with ``--clearenv`` and the allow-listed ``ENV``, and sees read-only only
   ``/usr``, the Python prefix, the virtualenv, this repository's ``workers/`` and ``specs/``
   code and ``/etc/ld.so.cache``; read-write only the worker's private call folders at
   ``/calls``; a tmpfs ``/tmp``. No network, no ``LWM_VAR_DIR``, no media, no secrets.
2. Each call is a fork of it that enters its own nested namespaces (``namespaces.enter_call``):
   only its own ``in/`` (read-only), a private tmpfs, no ``/proc``, no capabilities, the
   seccomp filter below, and its own PID namespace whose end kills all the call started.

When the worker runs as root and an unprivileged account can reach the Python runtime,
``bwrap`` itself is started as uid/gid 65534, so that even an escape lands in an
unprivileged account. Otherwise the namespaces still hold, and the status says so.

Why a fork server: measured on this machine, a fresh ``bwrap`` + Python per call costs
``import torch`` (~1.4 s idle, 4-7 s under the usual load of this 2-core machine) on
every call; a fork costs milliseconds. Keeping calls apart inside one server needs the
per-call namespaces of layer 2, which use the same kernel mechanism bwrap uses.

Imports: the standard library and ``specs.packaging.bubblewrap`` (no Django, no torch).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specs.packaging import bubblewrap

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("workers", "specs")  # the server imports workers.sandbox (and checks that may live in specs/)
SANDBOX_CODE = "/sandbox/code"
SANDBOX_CALLS = "/calls"
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
# namespace flags are refused by argument (``CLONE_NAMESPACE_FLAGS``).
DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "fanotify_init",
    "lookup_dcookie",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "open_by_handle_at",
    "name_to_handle_at",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
ENOSYS_SYSCALLS = ("clone3",)
# clone() with any of these flags is refused: no new namespaces from inside a call.
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


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
        return {
            "ok": self.ok,
            "mode": self.mode,
            "reason": self.reason,
            "uid_drop": self.drop_to_nobody,
            "seccomp": self.seccomp,
            "guarantees": list(self.guarantees),
        }


def allow_unisolated() -> bool:
    """The loudly named development escape hatch (``settings.LWM_SANDBOX_ALLOW_UNISOLATED``)."""
    try:
        from django.conf import settings

        if settings.configured:
            return bool(settings.LWM_SANDBOX_ALLOW_UNISOLATED)
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
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
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
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in CLONE_NAMESPACE_FLAGS:  # (flags & flag) == flag -> EPERM; SCMP_CMP_MASKED_EQ = 7
            cmp = _ArgCmp(0, 7, flag, flag)
            if lib.seccomp_rule_add_array(ctx, errno_action | 1, clone, 1, ctypes.byref(cmp)) != 0:
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


# --- the command line ---------------------------------------------------------------------------
def python_dirs() -> tuple[Path, Path, Path]:
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
    base, venv, _ = python_dirs()
    return all(_reachable_by_nobody(p) for p in (base, venv, *(ROOT / d for d in CODE_DIRS)))


def bwrap_argv(bwrap: str, calls: Path, command: list[str], *, binds: tuple[str, ...] = ()) -> list[str]:
    """The bwrap command running ``command`` (the fork server) with ``calls`` at ``/calls``.

    ``binds`` are extra host paths shown read-only at the same path (e.g. a base model
    folder outside the virtualenv). No seccomp filter here: the server's forks need
    ``unshare`` and ``mount`` to build each call's view, then load the filter themselves.
    The view shared with the client's isolated prediction is ``specs.packaging.bubblewrap``'s.
    """
    base, venv, _ = python_dirs()
    return bubblewrap.bwrap_argv(
        bwrap,
        command,
        env=ENV,
        options=["--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox"],
        ro_binds=[
            *((path, path) for path in (str(base), str(venv), *binds)),
            *((str(ROOT / name), f"{SANDBOX_CODE}/{name}") for name in CODE_DIRS),
        ],
        mounts=["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--bind", str(calls), SANDBOX_CALLS]
        + ["--dir", SANDBOX_IN],
        tmp_bytes=TMPFS_BYTES,
    )


def python_command(*args: str) -> list[str]:
    """The sandbox's Python: the virtualenv's interpreter, no user site, no bytecode writes."""
    return [str(python_dirs()[2]), "-s", "-B", *args]


def preexec(drop: bool):
    """``preexec_fn`` for bwrap: as root with ``drop``, become 65534 (no groups) first."""

    def apply() -> None:
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return apply


# --- the probe -----------------------------------------------------------------------------------
# The probe: a call's view, built exactly as a call builds it, reports what it sees.
_PROBE = """
import json, os, socket, sys
from workers.sandbox import namespaces
from workers.sandbox.isolation import seccomp_program, TMPFS_BYTES
namespaces.enter_call("probe", seccomp=seccomp_program(), tmpfs_bytes=TMPFS_BYTES)
namespaces.pid_namespace_init()
def listing(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
print(json.dumps({"interfaces": [n for _, n in socket.if_nameindex()], "pid": os.getpid(),
                  "env": sorted(os.environ), "proc": listing("/proc"), "calls": listing("/calls"),
                  "in": listing("/sandbox/in")}))
"""


@functools.lru_cache(maxsize=1)
def probe() -> Isolation:
    """Can a sandbox be set up here? Build one call's view once (cached for the process) and look."""
    bwrap = shutil.which("bwrap") or ""
    if not bwrap:
        return _refused("bubblewrap (bwrap) is not installed")
    if not seccomp_program():
        return _refused("libseccomp (libseccomp2) is missing: no seccomp filter for uploaded code")
    drop = drop_to_nobody()
    calls = Path(tempfile.mkdtemp(prefix="lwm-sandbox-probe-"))
    try:
        (calls / "probe" / "in").mkdir(parents=True)
        (calls / "other").mkdir()
        if drop:
            for path in (calls, calls / "probe", calls / "probe" / "in", calls / "other"):
                os.chown(path, NOBODY, NOBODY)
        started = time.monotonic()
        argv = bwrap_argv(bwrap, calls, python_command("-c", _PROBE))
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                env={},
                close_fds=True,
                preexec_fn=preexec(drop),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _refused(f"bwrap could not start: {exc}")
        try:
            seen = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return _refused(f"the sandbox failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        if (
            seen["interfaces"] != ["lo"]
            or seen["pid"] != 2
            or not set(seen["env"]) <= {*ENV, "LC_CTYPE", "PWD"}
            or seen["proc"]
            or seen["calls"]
            or seen["in"]
        ):
            return _refused(f"the sandbox did not isolate as expected: {seen}")
        guarantees: tuple[str, ...] = (
            "user-namespace",
            "pid-namespace",
            "mount-namespace",
            "no-network",
            "ipc-namespace",
            "uts-namespace",
            "clean-environment",
            "read-only-runtime",
            "private-tmpfs",
            "no-capabilities",
            "seccomp",
        )
        if drop:
            guarantees += ("uid-65534",)
        return Isolation(
            ok=True,
            mode="bwrap",
            bwrap=bwrap,
            drop_to_nobody=drop,
            seccomp=True,
            guarantees=guarantees,
            reason=f"probe took {time.monotonic() - started:.2f} s",
        )
    finally:
        shutil.rmtree(calls, ignore_errors=True)


def _refused(reason: str) -> Isolation:
    if allow_unisolated():
        return Isolation(
            ok=True,
            mode="unisolated",
            reason=f"{reason}; running UNISOLATED because {ALLOW_UNISOLATED_ENV}=true",
        )
    return Isolation(ok=False, mode="refused", reason=reason)


def isolation_status() -> dict[str, Any]:
    """The sandbox part of /healthz: whether uploaded code can run, how isolated, and if not why."""
    status = probe().as_dict()
    if status["mode"] == "unisolated":
        status["warning"] = (
            f"uploaded models run WITHOUT isolation ({ALLOW_UNISOLATED_ENV}=true): development only"
        )
    return status
