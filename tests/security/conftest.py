"""Who the sandbox tests run as: the current user, and an unprivileged worker account when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]
WORKER_USER = "lwm-worker"
SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
RUNUSER = shutil.which("runuser", path=SBIN) or "runuser"


def _ensure_worker_user() -> str | None:
    """The unprivileged account (created when we are root); None when it cannot be had."""
    try:
        pwd.getpwnam(WORKER_USER)
        return WORKER_USER
    except KeyError:
        pass
    if os.geteuid() != 0 or not shutil.which("useradd", path=SBIN):
        return None
    subprocess.run([shutil.which("useradd", path=SBIN) or "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", WORKER_USER], check=True)
    return WORKER_USER


def _can_run_python_as(user: str) -> str:
    """'' when ``user`` can import the sandbox from this checkout, else why not."""
    probe = subprocess.run([RUNUSER, "-u", user, "--", sys.executable, "-c", "import torch, workers.sandbox"],
                           capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return "" if probe.returncode == 0 else probe.stderr.strip()[-300:]


@pytest.fixture(scope="session", params=["current-user", "unprivileged-worker"])
def worker_identity(request) -> list[str]:
    """The command prefix that runs a process as the worker: as we are, and as a non-root account."""
    if request.param == "current-user":
        return []
    if os.geteuid() != 0:
        return []  # we already are an unprivileged worker: the first case covers it
    user = _ensure_worker_user()
    why = "cannot create the unprivileged account" if user is None else _can_run_python_as(user)
    if why:
        message = f"cannot run the sandbox as {WORKER_USER}: {why} (the interpreter and checkout must be readable by it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return [RUNUSER, "-u", user, "--"]
