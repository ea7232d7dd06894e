"""A live market for the benchmark's ``--via api`` mode, started the way ``make demo`` starts one
(scripts/demo.sh): the embedded defaults (SQLite, local files, the filesystem Celery broker) in a
throw-away var dir, ``migrate``, ``ensure_demo_users``, a real Celery worker process and the
Django web server; the accounts log in with the client for their API tokens, as the demo seeder does.

The developer is the demo account (``demo``); the user is a second account created here, so the
user's submissions never see the developer's rights. Every process started here is stopped (by its
own process group) when the context exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.markets.base import ROOT

PY = sys.executable
USER, USER_PASSWORD = "bench-user", "bench-user-password"
DEVELOPER, DEVELOPER_PASSWORD = "demo", "demo-password"  # created by ensure_demo_users
# Settings a test or in-process run may have put in this process's environment: the live market
# must run on its own embedded defaults, not on them.
INHERITED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "LWM_TEST_DB_NAME",
    "LWM_SANDBOX_CPU_SECONDS",
    "LWM_SANDBOX_WALL_SECONDS",
    "LWM_SANDBOX_MEMORY_MB",
    "LWM_WORKER_HEARTBEAT_SECONDS",
    "LWM_WORKER_STALE_SECONDS",
)


def import_client() -> Any:
    """``lwm_client`` as a user has it (the repository's client/ folder when it is not installed)."""
    try:
        import lwm_client
    except ImportError:
        sys.path.insert(0, str(ROOT / "client"))
        import lwm_client
    return lwm_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveMarket:
    """``with LiveMarket(folder) as m:`` a running market at ``m.url`` with ``m.developer`` and
    ``m.user`` (logged-in :class:`lwm_client.Client` objects)."""

    folder: Path
    worker_concurrency: int = 1
    ready_timeout: float = 180.0

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        self.env.update(
            DJANGO_SETTINGS_MODULE="marketplace.settings.base",
            LWM_VAR_DIR=str(self.folder / "var"),
            DEBUG="true",
            SITE_URL=self.url,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            # One benchmark user sends a few hundred submissions, one at a time: the per-user limits
            # (3 active, 30 an hour) protect a shared market, not this one.
            LWM_SUBMISSION_MAX_ACTIVE="1000",
            LWM_SUBMISSION_RATE="100000/hour",
        )

    def manage(self, *args: str) -> None:
        subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL
        )

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - the child writes it until stopped
        # Its own session: stopping it stops its children (the worker's pool) and nothing else.
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)

    def __enter__(self) -> LiveMarket:
        (self.folder / "var").mkdir(parents=True, exist_ok=True)
        try:
            self.manage("migrate", "--noinput")
            self.manage("ensure_demo_users")
            self.manage(
                "shell",
                "-c",
                "from marketplace.accounts.models import User; "
                f"User.objects.filter(username='{USER}').exists() or "
                f"User.objects.create_user('{USER}', email='{USER}@localhost', password='{USER_PASSWORD}')",
            )
            worker = ["-Q", "default,compute", "-c", str(self.worker_concurrency), "-l", "WARNING"]
            beat = ["-B", "--schedule", str(self.folder / "celerybeat-schedule")]
            self._start("worker", [PY, "-m", "celery", "-A", "workers.celery", "worker", *worker, *beat])
            host = self.url.removeprefix("http://")
            self._start("web", [PY, "manage.py", "runserver", host, "--noreload"])
            self._wait_ready()
            lwm = import_client()
            self.developer = lwm.Client(self.url, poll_interval=1.0)
            self.developer.login(DEVELOPER, DEVELOPER_PASSWORD, name="bench-developer", save=False)
            self.user = lwm.Client(self.url, poll_interval=1.0)
            self.user.login(USER, USER_PASSWORD, name="bench-user", save=False)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.args[:4]} exited with {proc.returncode}: see {self.folder}/*.log"
                    )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"the market at {self.url} was not ready in {self.ready_timeout:.0f} s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
