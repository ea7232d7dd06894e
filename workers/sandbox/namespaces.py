"""A call's own namespaces, entered by a freshly forked child of the fork server (``zygote``).

The fork server runs inside bubblewrap (``isolation.bwrap_argv``): no network, a cleared
environment, a read-only runtime and the worker's private call folders at ``/calls``. Each
call is a fork of it that, before touching the upload, calls ``enter_call``:

* new user, mount, PID, network, IPC and UTS namespaces (nested in bwrap's);
* its own call's ``in/`` bound read-only at ``/sandbox/in``; ``/calls`` (every other call)
  covered by an empty tmpfs; a private tmpfs at ``/tmp``; an empty tmpfs over ``/proc``
  (the kernel refuses a fresh procfs below bwrap's, and the model needs none);
* every capability dropped, ``no_new_privs``, and the seccomp filter of ``isolation``
  (which from then on refuses ``mount``, ``unshare``, ``setns``, ``ptrace``, …);

then ``pid_namespace_init`` forks PID 1 of the new PID namespace (a reaper) and the process
that runs the model (PID 2). When PID 1 exits the kernel kills everything left in the
namespace: nothing a call starts outlives it, a double-forked ``setsid()`` child included.

Imports: the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
CAPABILITY_VERSION_3 = 0x20080522
CALLS = "/calls"
CALL_IN = "/sandbox/in"

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _ok(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _bytes(value: str | None) -> bytes | None:
    return value.encode() if value is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _ok(
        _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)),
        f"mount {target}",
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _drop_capabilities() -> None:
    header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _ok(_libc.capset(ctypes.byref(header), data), "capset")


def _load_seccomp(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def enter_call(call: str, *, seccomp: bytes | None, tmpfs_bytes: int) -> None:
    """Move this single-threaded process into call ``call``'s own namespaces and view (see above)."""
    uid, gid = os.getuid(), os.getgid()
    _ok(
        _libc.unshare(
            CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        ),
        "unshare",
    )
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(f"{CALLS}/{call}/in", CALL_IN, None, MS_BIND | MS_REC)
    _mount(None, CALL_IN, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount("tmpfs", CALLS, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_bytes},mode=0700")
    _mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    _ok(_libc.sethostname(b"call", 4), "sethostname")
    _drop_capabilities()
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if seccomp:
        _load_seccomp(seccomp)
    os.chdir("/tmp")


def _status_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def pid_namespace_init() -> None:
    """Fork PID 1 of the new PID namespace and, under it, the process that returns from here.

    The calling process and PID 1 never return: each waits for its child and exits with its
    status (a signal number as 128 + n). PID 1 also reaps orphans; its exit ends the namespace.
    """
    first = os.fork()
    if first:
        _, status = os.waitpid(first, 0)
        os._exit(_status_code(status))
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    worker = os.fork()
    if worker == 0:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return
    while True:  # PID 1: reap everything, leave with the worker's status
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == worker:
            os._exit(_status_code(status))
