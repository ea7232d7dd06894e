"""The worker's side of the sandbox's fork server (``zygote``): one per worker process, started under
bubblewrap on first use, restarted when it dies or needs more read-only binds; each call is one request."""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from workers.sandbox import isolation
from workers.sandbox.errors import SandboxUnavailable
from workers.sandbox.isolation import ROOT, SANDBOX_CALLS, Isolation
from workers.sandbox.sandbox_log import scrub_log, tail_log

_parent: tuple[int, Path] | None = None


def private_calls_folder(iso: Isolation) -> Path:
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


class ForkServer:
    """One fork server per worker process (inside bwrap), started on first use and restarted if it dies."""

    def __init__(self, iso: Isolation, binds: tuple[str, ...]):
        self.iso, self.binds, self.owner = iso, binds, os.getpid()
        self.calls = private_calls_folder(iso)
        self.log_path = self.calls / "server.log"
        if iso.mode == "bwrap":
            command = isolation.python_command("-m", "workers.sandbox.zygote", "--calls", SANDBOX_CALLS)
            argv, env, cwd = isolation.bwrap_argv(iso.bwrap, self.calls, command, binds=binds), {}, "/"
        else:  # explicitly allowed development mode: the same server, no namespaces
            argv = isolation.python_command(
                "-m", "workers.sandbox.zygote", "--calls", str(self.calls), "--unisolated"
            )
            env, cwd = (
                {
                    **isolation.ENV,
                    "PYTHONPATH": str(ROOT),
                    "HOME": str(self.calls),
                    "TMPDIR": str(self.calls),
                },
                str(self.calls),
            )
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                env=env,
                cwd=cwd,
                close_fds=True,
                start_new_session=True,
                preexec_fn=isolation.preexec(iso.drop_to_nobody),
            )

    def fits(self, iso: Isolation, binds: tuple[str, ...]) -> bool:
        return (
            self.owner == os.getpid()
            and self.iso == iso
            and set(binds) <= set(self.binds)
            and self.proc.poll() is None
        )

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
            raise SandboxUnavailable(
                f"the sandbox server did not answer: {scrub_log(self.read_log())[-500:]}"
            )
        return json.loads(line)

    def read_log(self) -> str:
        return tail_log(self.log_path)

    def close(self) -> None:
        if self.owner == os.getpid():
            self.proc.kill()
            self.proc.wait()


_lock = threading.Lock()
_zygote: ForkServer | None = None


def ask_fork_server(
    iso: Isolation, request: dict[str, Any], binds: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    global _zygote
    with _lock:
        if _zygote is None or not _zygote.fits(iso, binds):
            if _zygote is not None:
                binds = tuple(dict.fromkeys([*_zygote.binds, *binds]))
                _zygote.close()
            _zygote = ForkServer(iso, binds)
        return _zygote.ask(request, timeout)


def base_model_binds(base_model_path: str | None) -> tuple[str, ...]:
    """A base model outside the runtime the server already sees is shown to it read-only."""
    if not base_model_path:
        return ()
    path = Path(base_model_path).resolve()
    base, venv, _ = isolation.python_dirs()
    return () if path.is_relative_to(venv) or path.is_relative_to(base) else (str(path),)
