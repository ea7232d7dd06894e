"""A whole market on services of its own, for fault tests: a PostgreSQL cluster (``initdb``),
a ``redis-server`` (broker and cache), moto's S3 server behind a TCP proxy that can refuse or
hang, gunicorn, and real Celery workers -- each on a free loopback port, never the shared
5432/6379/5672. The tests break these services for real and look at the rows and objects after.
"""

from __future__ import annotations

import glob
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.services import ROOT, free_port, start_s3, unavailable, wait_for, wait_for_port


def _pg_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


class PostgresCluster:
    """A throwaway cluster; as root, it runs as the ``postgres`` user (initdb refuses root)."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="lwm-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            shutil.chown(self.dir, self.owner)
            os.chmod(self.dir, 0o700)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.owner:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, timeout=120)

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self.start()

    def start(self) -> PostgresCluster:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c "
            "synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "-t", "60", "start"
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def url(self, db: str = "lwm") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str = "lwm") -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """``redis-server`` with an append-only file, so a restart keeps what was fsynced."""

    def __init__(self) -> None:
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            unavailable("redis-server is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="lwm-faults-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        cmd = [
            str(self.exe),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, 20):
            raise RuntimeError("redis-server did not start")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class FaultProxy:
    """A TCP proxy in front of a real server: ``pass`` forwards, ``refuse`` closes the port
    (connections are refused), ``hang`` accepts and never answers. A mode change drops the
    open connections, as a failing network would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self.mode = "pass"
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open_listener()

    def _open_listener(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: refuse mode
            if self._listener is not listener:
                client.close()
                return
            with self._lock:
                self._conns.add(client)
            if self.mode == "hang":
                continue  # held open, never answered
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns.add(upstream)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for sock in (client, upstream):
                sock.close()

    def set_mode(self, mode: str) -> None:
        assert mode in ("pass", "refuse", "hang")
        with self._lock:
            for sock in self._conns:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._conns.clear()
        if mode == "refuse" and self._listener is not None:
            try:
                self._listener.shutdown(
                    socket.SHUT_RDWR
                )  # wakes the blocked accept(); close() alone would not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        elif mode != "refuse" and self._listener is None:
            self._open_listener()
        self.mode = mode


@dataclass
class Service:
    """A subprocess of the stack (gunicorn, a worker) with its log."""

    cmd: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the process for its lifetime
        self.process = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 40) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


@dataclass
class Stack:
    pg: PostgresCluster
    redis: RedisServer
    s3_url: str
    s3_process: subprocess.Popen[bytes]
    bucket: str
    proxy: FaultProxy
    dir: Path
    env: dict[str, str] = field(default_factory=dict)
    web: Service | None = None
    workers: list[Service] = field(default_factory=list)
    web_port: int = 0
    tokens: dict[str, str] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr.decode()[-3000:]}")
        return done.stdout.decode()

    def start_web(self, workers: int = 2) -> None:
        self.web_port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "marketplace.wsgi:application",
            "-b",
            f"127.0.0.1:{self.web_port}",
            "-w",
            str(workers),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
        ]
        self.web = Service(cmd, self.env, self.dir / "web.log").start()
        if not wait_for_port(self.web_port, 60):
            raise RuntimeError(f"gunicorn did not start:\n{self.web.tail()}")

    def start_worker(self, *, extra_env: dict[str, str] | None = None) -> Service:
        name = f"fault-{uuid.uuid4().hex[:6]}@localhost"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery",
            "worker",
            "-Q",
            "default,compute",
            "-c",
            "2",
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        worker = Service(
            cmd, {**self.env, **(extra_env or {})}, self.dir / f"worker-{len(self.workers)}.log"
        ).start()
        self.workers.append(worker)
        wait_for(
            lambda: self.sql("SELECT 1 FROM jobs_workerheartbeat WHERE hostname = %s", [name]), timeout=90
        )
        return worker

    # --- reading the truth -------------------------------------------------------------
    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with psycopg.connect(self.pg.url(), connect_timeout=3) as conn:
                return list(conn.execute(query, params or []).fetchall())
        except psycopg.OperationalError:
            return []  # the cluster is down right now: callers poll

    def objects(self) -> set[str]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        names: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            names.update(item["Key"] for item in page.get("Contents", []))
        return names

    def http(self, user: str = "alice") -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return session

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def destroy(self) -> None:
        for worker in self.workers:
            worker.stop(kill=True)
        if self.web is not None:
            self.web.stop()
        self.s3_process.terminate()
        self.redis.destroy()
        self.pg.destroy()
        if not os.environ.get("LWM_FAULTS_KEEP_LOGS"):  # set it to read web.log / worker-*.log after a run
            shutil.rmtree(self.dir, ignore_errors=True)


# Short intervals, so a fault and its recovery fit in seconds (see docs/operations.md for production values).
FAST_SETTINGS = {
    "LWM_WORKER_HEARTBEAT_SECONDS": "0.5",
    "LWM_WORKER_STALE_SECONDS": "5",
    "LWM_JOB_DISPATCH_GRACE_SECONDS": "2",
    "LWM_JOB_REDISPATCH_SECONDS": "20",
    "LWM_JOB_TRANSIENT_RETRIES": "5",
    "LWM_JOB_RETRY_BACKOFF_SECONDS": "1",
    "LWM_JOB_RETRY_BACKOFF_MAX_SECONDS": "4",
    "LWM_S3_CONNECT_TIMEOUT": "1",
    "LWM_S3_READ_TIMEOUT": "2",
    "LWM_S3_MAX_ATTEMPTS": "2",
    "LWM_BROKER_PUBLISH_TIMEOUT": "1",
    "CELERY_VISIBILITY_TIMEOUT": "20",
    "LWM_SANDBOX_CPU_SECONDS": "5",
    "LWM_SANDBOX_WALL_SECONDS": "20",
    "LWM_SANDBOX_MEMORY_MB": "1024",
    "LWM_RKME_K": "10",
    "LWM_SUBMISSION_MAX_ACTIVE": "50",
    "LWM_SUBMISSION_RATE": "1000/min",
    "LWM_HEALTH_CHECK_TIMEOUT": "1.0",
}


def start_stack(*, web_workers: int = 2) -> Stack:
    base = Path(tempfile.mkdtemp(prefix="lwm-faults-"))
    pg = PostgresCluster().init()
    pg.create_database()
    redis = RedisServer().start()
    s3 = start_s3()
    proxy = FaultProxy(int(s3.url.rsplit(":", 1)[1]))
    stack = Stack(
        pg=pg, redis=redis, s3_url=s3.url, s3_process=s3.process, bucket=s3.bucket, proxy=proxy, dir=base
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LWM_", "DATABASE_", "CELERY_", "S3_", "CACHE_"))
    }
    env.update(FAST_SETTINGS)
    env.update(
        DJANGO_SETTINGS_MODULE="marketplace.settings.base",
        DEBUG="false",
        SECRET_KEY="fault-tests-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=pg.url(),
        CELERY_BROKER_URL=redis.url(0),
        CACHE_URL=redis.url(1),
        S3_BUCKET=s3.bucket,
        S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}",
        S3_ACCESS_KEY_ID="testing",
        S3_SECRET_ACCESS_KEY="testing",
        LWM_VAR_DIR=str(base / "var"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        LWM_HEALTH_TOKEN="fault-health-token",
    )
    stack.env = env
    try:
        stack.manage("migrate", "--noinput")
        stack.tokens = json.loads(stack.manage("shell", "-c", _MAKE_USERS).strip().splitlines()[-1])
        stack.start_web(web_workers)
        stack.start_worker()
    except BaseException:
        stack.destroy()
        raise
    return stack


_MAKE_USERS = """
import json
from marketplace.accounts.models import User
from marketplace.accounts.services import api_token_create
tokens = {}
for name in ("alice", "bob"):
    user = User.objects.create_user(name, f"{name}@example.com", f"{name}-pass-123")
    tokens[name] = api_token_create(user=user, name="faults")[1]
print(json.dumps(tokens))
"""


def skip_unless_linux_root_mount() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs for the disk-full fault needs root")
