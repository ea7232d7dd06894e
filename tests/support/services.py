"""Real services for tests: a Celery worker process and an S3-compatible HTTP endpoint.

Nothing here patches a client library: the worker is ``celery worker`` in its own
process and S3 is moto's standalone server speaking HTTP on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip off CI; in CI a missing service is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 240.0, interval: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something truthy and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@dataclass
class S3Endpoint:
    url: str
    bucket: str
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def storage_settings(self) -> dict[str, object]:
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.bucket,
                "endpoint_url": self.url,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": False,
                "default_acl": None,
            },
        }


def start_s3() -> S3Endpoint:
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        unavailable("moto_server (pip install 'moto[server]') is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if not wait_for_port(port, 20):
        proc.kill()
        unavailable("moto S3 server did not start within 20 s")
    url = f"http://127.0.0.1:{port}"
    bucket = f"lwm-test-{uuid.uuid4().hex[:8]}"
    import boto3

    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    env = {
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": url,
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
    }
    return S3Endpoint(url=url, bucket=bucket, process=proc, env=env)


RUNNING_WORKERS: set[WorkerProcess] = set()


@dataclass(eq=False)
class WorkerProcess:
    """A real ``celery worker`` bound to the test database; stop() really stops it."""

    env: dict[str, str]
    log_path: Path
    app: str = "workers.celery"  # tests.support.slow_stage_worker widens a stage for fault tests
    hostname: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:6]}@localhost")
    process: subprocess.Popen[bytes] | None = None

    def start(
        self, *, queues: str = "default,compute", concurrency: int = 1, wait: float = 60.0
    ) -> WorkerProcess:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            self.hostname,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the worker owns the handle for its lifetime
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if not self.wait_ready(wait):
            self.stop()
            raise RuntimeError(f"celery worker did not become ready in {wait} s; log:\n{self.log_tail()}")
        RUNNING_WORKERS.add(self)
        return self

    def slow_stage(self, stage: str, seconds: float) -> WorkerProcess:
        """Run the test-only app that pauses after each progress report of ``stage`` (call before start())."""
        import workers.base

        # The app wraps this function; fail here, not with a timing flake, if a refactor renames it.
        assert callable(getattr(workers.base, "job_progress", None)), (
            "update tests/support/slow_stage_worker.py"
        )
        self.app = "tests.support.slow_stage_worker"
        self.env = {**self.env, "LWM_TEST_SLOW_STAGE": stage, "LWM_TEST_SLOW_STAGE_SECONDS": str(seconds)}
        return self

    def wait_ready(self, timeout: float) -> bool:
        from marketplace.jobs.models import WorkerHeartbeat

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            if WorkerHeartbeat.objects.filter(hostname=self.hostname).exists():
                return True
            time.sleep(0.2)
        return False

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), or SIGKILL of the whole process group to simulate a crash."""
        RUNNING_WORKERS.discard(self)
        if self.process is None or self.process.poll() is not None:
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def database_url_for_worker() -> str:
    """The URL of the database pytest-django created (``test_<name>``), for the worker process."""
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or "postgres"
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    return (
        f"postgresql://{user}{password}@{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}"
        f"/{conf['NAME']}"
    )


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="marketplace.settings.test",
        DATABASE_URL=database_url_for_worker(),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("LWM_TEST_DB_NAME", None)  # the URL above already names the test database
    env.update(extra or {})
    return env
