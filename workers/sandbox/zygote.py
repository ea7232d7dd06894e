"""The sandbox's fork server: imports torch once, then forks one isolated call per request.

Run by ``runner`` as ``python -m workers.sandbox.zygote --calls DIR [--unisolated]``, inside
bubblewrap (``isolation.bwrap_argv``: no network, cleared environment, read-only runtime,
the worker's private call folders at ``/calls``). It reads one JSON request per line on
stdin (``call``: the call folder's name, ``kind``, ``limits``, ``base_model_path``) and
answers one JSON line on its original stdout; the call's output bytes go to
``<call>/answer`` (written by this server, which the call cannot reach).

Uploaded code never runs in this process, only in forks of it. Each fork, before touching
the upload: a new session, its log as stdout/stderr, nothing else of ours open, the
resource limits, then ``namespaces.enter_call`` (own user/mount/PID/network/IPC/UTS
namespaces, only its own ``in/`` visible, private ``/tmp``, no capabilities, seccomp) and
``namespaces.pid_namespace_init``; then ``child.run_call``. ``--unisolated`` (the explicitly
allowed development mode) skips ``enter_call``.
Imports: the standard library, numpy and torch — no Django.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any

from workers.sandbox import child, namespaces
from workers.sandbox.isolation import TMPFS_BYTES, seccomp_program

EXIT_SETUP = 5
ANSWER_FD = 3
_WARM: set[tuple[str, str | None]] = set()


def _call(req: dict[str, Any], calls: Path, answer: int, isolated: bool) -> None:
    """The forked call; never returns."""
    code = EXIT_SETUP
    try:
        os.setsid()
        log = os.open(calls / req["call"] / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(answer, ANSWER_FD)
        os.closerange(
            ANSWER_FD + 1, 65536
        )  # our protocol pipes, the log's fd: nothing else of ours stays open
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        child.apply_limits(req["limits"], processes=isolated)
        folder = calls / req["call"] / "in"
        if isolated:
            namespaces.enter_call(req["call"], seccomp=seccomp_program(), tmpfs_bytes=TMPFS_BYTES)
            folder = Path(namespaces.CALL_IN)
        namespaces.pid_namespace_init() if isolated else None
        code = child.run_call(req, folder, ANSWER_FD)
    except BaseException as exc:  # noqa: BLE001 - setup failed: our side, reported in the log
        try:
            print(f"sandbox setup failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        except BaseException:  # noqa: BLE001, S110 - nothing more can be reported
            pass
    os._exit(code)


def _collect(pid: int, read: int, wall: float, cap: int) -> tuple[dict[str, Any], bytes]:
    """Read the call's answer while it runs; kill its session at the wall-clock limit."""
    deadline, chunks, size, open_pipe = time.monotonic() + wall, [], 0, True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(pid)
            os.waitpid(pid, 0)
            return {"status": "timeout"}, b""
        if open_pipe and select.select([read], [], [], min(left, 0.05))[0]:
            chunk = os.read(read, 1 << 20)
            open_pipe = bool(chunk)
            if chunk and size < cap:  # beyond the cap the bytes are dropped (the output is then invalid)
                chunks.append(chunk)
                size += len(chunk)
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if not open_pipe:
            time.sleep(0.005)
    while open_pipe and select.select([read], [], [], 0)[0] and (chunk := os.read(read, 1 << 20)):
        chunks.append(chunk) if size < cap else None
        size += len(chunk)
    _kill(pid)  # the call's session (its PID namespace is already gone with its PID 1)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"status": "exit", "code": code}, b"".join(chunks)


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def serve(calls: Path, isolated: bool) -> None:
    """Answer requests until stdin closes (the worker exited)."""
    child.warm(None, None)
    seccomp_program()  # compiled once, here
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter goes to stderr, never into the protocol
    for line in sys.stdin:
        req = json.loads(line)
        started = time.monotonic()
        hint = (req["kind"], req.get("base_model_path"))
        try:
            if hint not in _WARM:
                child.warm(*hint)
                _WARM.add(hint)
        except Exception as exc:  # noqa: BLE001 - reported to the worker as our failure
            answer.write(json.dumps({"status": "setup", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
            continue
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _call(req, calls, write, isolated)
        os.close(write)
        try:
            cap = int(req["limits"]["memory_mb"]) * 2**20 + 2**20
            result, data = _collect(pid, read, float(req["limits"]["wall_seconds"]), cap)
        finally:
            os.close(read)
        (calls / req["call"] / "answer").write_bytes(data)
        result["seconds"] = round(time.monotonic() - started, 4)
        answer.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", required=True)
    parser.add_argument("--unisolated", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Path(args.calls), isolated=not args.unisolated)


if __name__ == "__main__":
    main()
