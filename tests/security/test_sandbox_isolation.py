"""A sandboxed call holds as root and as an unprivileged worker, as if the format checks had failed.

Each case runs ``sandbox_attacker`` (arbitrary code and hostile TorchScript under the real
isolation) as the worker would run, then checks from outside what got through: no TCP to
PostgreSQL/Redis/RabbitMQ, no file outside the call (secret file, var dir, /etc/shadow,
another call's folder), no variable of the worker's environment, no process left behind,
no file written on the host, nothing outside in the log returned to the uploader.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from django.conf import settings

from tests.security.conftest import ROOT, WORKER_USER
from tests.support import packages

PORTS = (5432, 6379, 5672)
CANARY = f"canary-{uuid.uuid4().hex}"


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _lingering(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def attack(worker_identity, tmp_path_factory):
    """Run the attacker once per identity; (its report, the spec, the secret's bytes)."""
    folder = tmp_path_factory.mktemp("secrets")
    secret = folder / "secret_key"
    secret.write_text(f"SECRET-{CANARY}")
    marker = folder / "marker"
    if worker_identity:  # the secret belongs to the worker's own account: only the sandbox stands in the way
        account = pwd.getpwnam(WORKER_USER)
        for path in (folder, secret):
            os.chown(path, account.pw_uid, account.pw_gid)
        folder.chmod(0o700)
    linger = f"{time.time_ns() % 10**6 + 100000}.5"  # a unique argument to find a surviving sleep by
    spec = {
        "ports": list(PORTS),
        "linger": linger,
        "secret": str(secret),
        "marker": str(marker),
        "read": [
            str(secret),
            "/etc/shadow",
            str(Path(settings.VAR_DIR) / "db.sqlite3"),
            str(ROOT / "marketplace/settings/base.py"),
        ],
        "list": [str(settings.VAR_DIR), str(folder), "/home", str(ROOT), str(ROOT / "marketplace")],
        "write": [
            str(folder / "written"),
            str(ROOT / "written-by-sandbox"),
            "/sandbox/in/written",
            "/written-at-root",
        ],
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(folder),
        "DATABASE_URL": f"postgres://u:{CANARY}@127.0.0.1/db",
        "LWM_CANARY": CANARY,
        "SECRET_KEY_FILE": str(secret),
    }
    proc = subprocess.run(
        [*worker_identity, sys.executable, "-m", "tests.security.sandbox_attacker", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["user"] != 0) == bool(
        worker_identity
    ) or os.geteuid() != 0  # it ran as the account we meant
    return report, spec, proc.stdout


def test_the_isolation_is_in_force(attack):
    report, _, _ = attack
    assert report["isolation"]["ok"] and report["isolation"]["mode"] == "bwrap"
    assert "error" not in report["code"], report["code"]
    for guarantee in ("pid-namespace", "no-network", "clean-environment", "seccomp"):
        assert guarantee in report["isolation"]["guarantees"]


def test_no_tcp_connection_to_the_database_cache_or_broker(attack):
    report, _, _ = attack
    reachable = [p for p in PORTS if _reachable(p)]
    assert reachable, "no service listens on the host: the check would prove nothing"
    for port in PORTS:
        assert report["code"]["tcp"][str(port)].startswith("refused"), report["code"]["tcp"]


def _runtime_skeleton(directory: str) -> set[str]:
    """Names a listing of ``directory`` may show: the first step towards the Python runtime bound
    read-only at its own path (e.g. ``.venv`` when the virtualenv lives in the checkout). bwrap
    creates those folders as bare mount points; nothing else of ``directory`` is there."""
    folder = Path(directory)
    runtime = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return {
        bound.relative_to(folder).parts[0]
        for bound in runtime
        if bound != folder and bound.is_relative_to(folder)
    }


def test_no_file_outside_the_call_can_be_read_listed_or_written(attack, tmp_path):
    report, spec, _ = attack
    code = report["code"]
    assert all(content is None for content in code["read"].values()), code["read"]
    assert all(
        listing is None or set(listing) <= _runtime_skeleton(path) for path, listing in code["list"].items()
    ), code["list"]
    assert not any(code["write"].values()), code["write"]
    assert not (Path(spec["secret"]).parent / "written").exists()
    assert not (ROOT / "written-by-sandbox").exists()


def test_another_calls_folder_is_invisible(attack):
    report, _, _ = attack
    victim = report["code"]["victim"]
    assert report["code"]["list"][victim] is None
    assert report["code"]["read"][f"{victim}/in/data.csv"] is None


def test_nothing_of_the_workers_environment_is_visible(attack):
    report, _, _ = attack
    env = report["code"]["env"]
    assert not {"DATABASE_URL", "LWM_CANARY", "SECRET_KEY_FILE"} & set(env)
    assert CANARY not in json.dumps(env)


def test_no_process_outlives_the_call_and_only_its_own_are_visible(attack):
    report, spec, _ = attack
    assert (
        report["code"]["pid"] == 2 and report["code"]["pids"] == []
    )  # its own PID namespace, no /proc at all
    assert _lingering(spec["linger"]) == []


def test_kernel_interfaces_are_refused(attack):
    report, _, _ = attack
    assert report["code"]["ptrace"] == -1 and report["code"]["unshare"] == -1


def test_hostile_torchscript_cannot_read_or_write_files_and_leaks_nothing(attack):
    report, spec, stdout = attack
    read, write = report["models"]["read"], report["models"]["write"]
    # The operator allow-list refuses these models inside the call before they run; the same reads
    # and writes as plain code (HOSTILE, no checks at all) are refused by the isolation alone above.
    assert not read["ok"] and read["code"] == "upload:user:unsafe-operator"
    assert not write["ok"] and write["code"] == "upload:user:unsafe-operator"
    assert not Path(spec["marker"]).exists()
    assert CANARY not in stdout  # neither in the messages nor in the logs handed back
    for result in (read, write):
        assert str(ROOT) not in result["log"] + result["message"]
        assert len(result["log"]) <= 4000


# --- end to end: the API, the broker, a real worker ----------------------------------------------
class _HostileTable(torch.nn.Module):
    """A table classifier whose forward reads ``secret`` and creates ``marker`` (aten::from_file)."""

    def __init__(self, secret: str, marker: str):
        super().__init__()
        self.secret, self.marker = secret, marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leaked = torch.from_file(self.secret, shared=False, size=8, dtype=torch.uint8)
        written = torch.from_file(self.marker, shared=True, size=8, dtype=torch.uint8)
        written.fill_(65)
        return x[:, :2] * 0 + leaked[:1].to(x.dtype) + written[:1].to(x.dtype)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_hostile_upload_through_the_api_is_rejected_leaves_no_marker_and_the_worker_keeps_publishing(
    celery_worker, s3_storage, alice, client_for, tmp_path
):
    from marketplace.jobs.choices import JobStatus
    from tests.integration.test_publish import finished, upload

    secret, marker = tmp_path / "secret_key", tmp_path / "marker"
    secret.write_text(f"SECRET-{CANARY}")
    model = packages.torchscript_bytes(_HostileTable(str(secret), str(marker)))
    client = client_for(alice)
    response = upload(
        client, packages.build_table_model_package(columns=["a", "b", "c"], model=model, name="hostile")
    )
    if response.status_code == 202:  # the operator allow-list is checked inside the sandboxed call at publish
        job = finished(response.json()["job"])
        assert job.status == JobStatus.REJECTED, (job.status, job.error)
        assert job.error["code"] == "upload:user:unsafe-operator", job.error
        assert job.error["details"]["operator"] == "aten::from_file", job.error
        body = json.dumps(client.get(f"/api/v1/jobs/{job.id}/").json())
    else:  # refused at upload by the operator allow-list (docs/security.md)
        assert (
            response.status_code == 400 and response.json()["error"]["code"] == "upload:user:unsafe-operator"
        )
        body = json.dumps(response.json())
    assert not marker.exists()
    assert CANARY not in body and str(ROOT) not in body
    good = upload(client, packages.build_table_model_package(name="after-hostile"))
    assert good.status_code == 202 and finished(good.json()["job"]).status == JobStatus.SUCCEEDED
