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
    subprocess.run(
        [
            shutil.which("useradd", path=SBIN) or "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            WORKER_USER,
        ],
        check=True,
    )
    return WORKER_USER


# As root, when the interpreter sits under a folder others cannot enter (a pyenv under /root), the
# worker account gets a private mount namespace in which that folder is an empty 0755 tmpfs holding
# only the interpreter's subtree: the host's folder stays as it is.
_REVEAL = (
    'set -e; mount --bind "$1" "$4"; mount -t tmpfs -o mode=0755 tmpfs "$2"; mkdir -p "$1"; mount --bind '
    '"$4" '
    '"$1"; '
    'u="$3"; shift 4; exec setpriv --reuid "$u" --regid "$u" --init-groups -- "$@"'
)


def _hidden_ancestor(path: Path) -> tuple[Path, Path] | None:
    """(first folder above ``path`` that others cannot enter, its child on the way to ``path``), or None."""
    parts = [*reversed(path.parents), path]
    for folder, child in zip(parts, parts[1:], strict=False):
        if not folder.stat().st_mode & 0o001:
            return folder, child
    return None


def _prefix_for(user: str, scratch: Path) -> list[str]:
    hidden = _hidden_ancestor(Path(sys.base_prefix).resolve())
    if hidden is None:
        return [RUNUSER, "-u", user, "--"]
    folder, child = hidden
    unshare = shutil.which("unshare", path=SBIN) or "unshare"
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _REVEAL,
        "sh",
        str(child),
        str(folder),
        user,
        str(scratch),
    ]


def _can_run_python_as(prefix: list[str]) -> str:
    """'' when ``prefix`` can import the sandbox from this checkout, else why not."""
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import torch, workers.sandbox"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return "" if probe.returncode == 0 else probe.stderr.strip()[-300:]


@pytest.fixture(scope="session", params=["current-user", "unprivileged-worker"])
def worker_identity(request, tmp_path_factory) -> list[str]:
    """The command prefix that runs a process as the worker: as we are, and as a non-root account."""
    if request.param == "current-user":
        return []
    if os.geteuid() != 0:
        return []  # we already are an unprivileged worker: the first case covers it
    user = _ensure_worker_user()
    prefix = _prefix_for(user, tmp_path_factory.mktemp("reveal")) if user else []
    why = "cannot create the unprivileged account" if user is None else _can_run_python_as(prefix)
    if why:
        message = (
            f"cannot run the sandbox as {WORKER_USER}: {why} (the interpreter and checkout must be "
            "readable by it)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return prefix
