"""Attack the sandbox from the inside and report what got through (run by test_sandbox_isolation).

``python -m tests.security.sandbox_attacker SPEC_JSON`` prints one JSON object. It runs as
whichever user starts it (the worker's user: root, or an unprivileged account), and:

1. runs ``HOSTILE`` (arbitrary Python standing in for an upload whose format checks were
   passed) under exactly the isolation a call gets: the fork server's ``isolation.bwrap_argv``
   and uid handling, then ``namespaces.enter_call`` and ``pid_namespace_init`` as the server's
   forks do, in a call folder next to another call's folder;
2. runs TorchScript models through ``run_model`` that read a secret with ``torch.from_file``
   and create a marker file with ``torch.from_file(..., shared=True)`` (operators that the
   format checks refuse: here they must fail because of the sandbox alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from workers.sandbox import SandboxError, SandboxLimits, isolation, run_model

# Arbitrary code inside the sandbox; argv[1] is the JSON spec. Prints what it could do.
HOSTILE = r"""
import json, os, socket, sys, time
spec = json.loads(sys.argv[1])
seen = {"tcp": {}, "read": {}, "list": {}, "write": {}}
for port in spec["ports"]:
    s = socket.socket(); s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port)); seen["tcp"][port] = "connected"
    except OSError as exc:
        seen["tcp"][port] = f"refused: {exc}"
    finally:
        s.close()
for path in spec["read"]:
    try:
        with open(path, "rb") as handle:
            seen["read"][path] = handle.read(200).decode(errors="replace")
    except OSError as exc:
        seen["read"][path] = None
for path in spec["list"]:
    try:
        seen["list"][path] = os.listdir(path)
    except OSError:
        seen["list"][path] = None
for path in spec["write"]:
    try:
        with open(path, "w") as handle:
            handle.write("pwned")
        seen["write"][path] = True
    except OSError:
        seen["write"][path] = False
seen["env"] = dict(os.environ)
try:
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
except OSError:
    seen["pids"] = []
seen["pid"] = os.getpid()
seen["uid"] = os.getuid()
# A double-forked setsid() grandchild that tries to outlive the call.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", spec["linger"]])
    os._exit(0)
time.sleep(0.3)
try:
    pid = os.fork()
    seen["fork"] = "ok"
    if pid == 0:
        os._exit(0)
except OSError as exc:
    seen["fork"] = str(exc)
for name, call in (("ptrace", lambda: __import__("ctypes").CDLL(None, use_errno=True).ptrace(16, 1, 0, 0)),
                   ("unshare", lambda: __import__("ctypes").CDLL(None, use_errno=True).unshare(0x10000000))):
    seen[name] = call()
print(json.dumps(seen))
"""


class Reader(torch.nn.Module):
    """Reads a file named at build time into its output (aten::from_file)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=32, dtype=torch.uint8)
        return x[:, :1] * 0 + data[:1].to(x.dtype)


class Writer(torch.nn.Module):
    """Creates and fills a file named at build time (aten::from_file with shared=True)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=True, size=16, dtype=torch.uint8)
        data.fill_(65)
        return x[:, :1] * 0 + data[:1].to(x.dtype)


def _scripted(module: torch.nn.Module) -> bytes:
    path = Path(tempfile.mkdtemp()) / "model.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    data = path.read_bytes()
    path.unlink()
    path.parent.rmdir()
    return data


ENTER = """
import sys
from workers.sandbox import namespaces
from workers.sandbox.isolation import seccomp_program, TMPFS_BYTES
namespaces.enter_call(sys.argv[2], seccomp=seccomp_program(), tmpfs_bytes=TMPFS_BYTES)
namespaces.pid_namespace_init()
exec(sys.argv[3])
"""


def attack_with_code(spec: dict) -> dict:
    """HOSTILE in a call built exactly as the fork server builds one (same bwrap, same enter_call)."""
    iso = isolation.probe()
    assert iso.mode == "bwrap", iso
    calls = Path(tempfile.mkdtemp(prefix="lwm-sandbox-attack-"))
    victim, call = calls / "victim", calls / "attacker"
    (victim / "in").mkdir(parents=True)
    (victim / "in" / "data.csv").write_text("private,rows\n")
    (call / "in").mkdir(parents=True)
    if iso.drop_to_nobody:
        for path in [calls, *calls.rglob("*")]:
            os.chown(path, isolation.NOBODY, isolation.NOBODY)
    spec = {
        **spec,
        "list": [*spec["list"], str(victim), str(calls), "/calls", "/calls/victim", "/calls/victim/in"],
        "read": [*spec["read"], str(victim / "in" / "data.csv"), "/calls/victim/in/data.csv"],
    }
    command = isolation.python_command("-c", ENTER, json.dumps(spec), call.name, HOSTILE)
    argv = isolation.bwrap_argv(iso.bwrap, calls, command)
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            env={},
            start_new_session=True,
            preexec_fn=isolation.preexec(iso.drop_to_nobody),
        )
    finally:
        shutil.rmtree(calls, ignore_errors=True)
    seen = json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-2000:]}
    seen["victim"] = str(victim)
    return seen


def attack_with_models(spec: dict) -> dict:
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=10, wall_seconds=60)
    x = np.zeros((2, 3), np.float32)
    results = {}
    for name, module in (("read", Reader(spec["secret"])), ("write", Writer(spec["marker"]))):
        try:
            out = run_model(_scripted(module), x, limits=limits)
            results[name] = {"ok": True, "out": out.tolist()}
        except SandboxError as exc:
            results[name] = {"ok": False, "code": exc.code, "message": exc.message, "log": exc.log}
    return results


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "user": os.getuid(),
                "isolation": isolation.isolation_status(),
                "code": attack_with_code(spec),
                "models": attack_with_models(spec),
            }
        )
    )
