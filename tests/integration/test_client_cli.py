"""The `lwm` CLI through subprocesses against a live server and a real worker, with --json parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import packages

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["m1", "m2"]


def write_csv(path: Path, X: np.ndarray, labels: np.ndarray | None = None) -> Path:
    header = COLUMNS + (["label"] if labels is not None else [])
    lines = [",".join(header)]
    for i, row in enumerate(X):
        lines.append(
            ",".join([repr(float(v)) for v in row] + ([str(labels[i])] if labels is not None else []))
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def eventually(fetch, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := fetch()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


@pytest.fixture
def lwm(live_server, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'client'}{os.pathsep}{ROOT}",
        "LWM_CONFIG": str(tmp_path / "config.json"),
        "LWM_URL": live_server.url,
        "LWM_PASSWORD": "alice-pass-123",
    }
    env.pop("LWM_TOKEN", None)

    def run(*args: str, ok: bool = True) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "lwm_client", "--json", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert (proc.returncode == 0) == ok, (args, proc.returncode, proc.stdout, proc.stderr[-2000:])
        return json.loads(proc.stdout)

    return run


def test_cli_commands_speak_json_end_to_end(lwm, alice, celery_worker, s3_storage, tmp_path):
    assert lwm("login", "--username", "alice")["username"] == "alice"

    good = tmp_path / "good.zip"
    good.write_bytes(
        packages.build_table_model_package(columns=COLUMNS, sample="csv", name="cli-table", seed=1)
    )
    bad = tmp_path / "bad.zip"
    bad.write_bytes(packages.symlink_package())
    assert lwm("package", "check", str(good), "--deep")["artifact_format"] == "torchscript"
    refused = lwm("package", "check", str(bad), ok=False)["error"]
    assert (refused["type"], refused["code"]) == ("PackageError", "upload:user:symlink")

    published = lwm("publish", str(good))
    assert published["status"] == "published" and len(published["sha256"]) == 64

    # Listing by filters (no query text): answered from the database, not from the web process's index.
    hits = eventually(lambda: lwm("search", "--modality", "table", "--owner", "alice")["results"])
    assert hits[0]["learnware_id"] == published["learnware"]
    user = write_csv(tmp_path / "user.csv", packages.table_data(COLUMNS, 50, seed=5))
    by_data = lwm("search", "--data", str(user))
    assert (
        by_data["results"][0]["learnware_id"] == published["learnware"] and by_data["results"][0]["mmd2"] >= 0
    )

    spec = lwm("spec", str(user), "-o", "user-rkme.json")
    assert (spec["n_rows"], spec["d"]) == (50, 2) and json.loads((tmp_path / "user-rkme.json").read_text())

    X = packages.table_data(COLUMNS, 40, seed=6)
    labelled = write_csv(tmp_path / "labelled.csv", X, np.where(X[:, 0] > X[:, 0].mean(), "class1", "class0"))
    sub = lwm("submit", str(user), "--labelled", str(labelled), "--download", str(tmp_path))
    assert sub["status"] == "succeeded" and Path(sub["download"]["path"]).exists()
    assert sub["download"]["sha256"] == sub["package_sha256"]
    assert lwm("status", sub["id"])["status"] == "succeeded"

    got = lwm("download", str(published["learnware"]), "-o", str(tmp_path / "lw.zip"))
    assert got["sha256"] == published["sha256"]
    single = lwm("predict", got["path"], str(user))["predictions"]
    assembled = lwm("predict", sub["download"]["path"], str(user), "--proba")["predictions"]
    assert len(single) == len(assembled) == 50 and set(single) <= {"class0", "class1"}
    np.testing.assert_allclose(np.asarray(assembled).sum(axis=1), 1.0, rtol=1e-6)

    missing = lwm("download", "999999", ok=False)["error"]
    assert missing["type"] == "NotFound"
