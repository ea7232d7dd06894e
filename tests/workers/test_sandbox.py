"""run_model: outputs equal a direct call; crash, hang and memory hog are stopped and named;
no isolation means no run (unless explicitly allowed); folders private; logs scrubbed."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from tests.support import packages
from workers.sandbox import (
    SandboxCpuExceeded,
    SandboxCrashed,
    SandboxIsolationUnavailable,
    SandboxLimits,
    SandboxMemoryExceeded,
    SandboxTimeout,
    SandboxUnavailable,
    fork_server,
    isolation,
    run_model,
    sandbox_log,
)

LIMITS = SandboxLimits(memory_mb=1024, cpu_seconds=2, wall_seconds=20)


def test_a_scripted_model_gives_the_same_outputs_as_in_process():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).eval()
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    out = run_model(packages.torchscript_bytes(model, torch.zeros(1, 4)), x, limits=LIMITS)
    with torch.no_grad():
        assert_allclose(out, model(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_a_torch_export_archive_is_never_loaded():
    # torch.export.load unpickles parts of a .pt2 with full pickle: the sandbox has no route to it.
    with pytest.raises(ValueError, match="kind must be one of"):
        run_model(
            packages.export_model_bytes(3, 2, seed=1),
            np.zeros((5, 3), np.float32),
            kind="torch_export",
            limits=LIMITS,
        )


@pytest.mark.parametrize(
    ("module", "error"),
    [
        (packages.Crash, SandboxCrashed),
        (packages.Hang, SandboxCpuExceeded),
        (packages.Hog, SandboxMemoryExceeded),
    ],
)
def test_a_misbehaving_model_is_stopped_quickly_with_its_reason(module, error):
    started = time.monotonic()
    with pytest.raises(error) as caught:
        run_model(packages.torchscript_bytes(module()), np.zeros((2, 3), np.float32), limits=LIMITS)
    assert time.monotonic() - started < 15
    assert caught.value.message


def test_the_wall_clock_limit_kills_a_model_that_outlives_it():
    with pytest.raises((SandboxTimeout, SandboxCpuExceeded)):
        run_model(
            packages.torchscript_bytes(packages.Hang()),
            np.zeros((2, 3), np.float32),
            limits=SandboxLimits(cpu_seconds=60, wall_seconds=1.5),
        )


def test_the_worker_survives_and_the_sandbox_serves_again_after_a_failure():
    with pytest.raises(SandboxCrashed):
        run_model(packages.torchscript_bytes(packages.Crash()), np.zeros((1, 3), np.float32), limits=LIMITS)
    out = run_model(packages.linear_model_bytes(3, 2), np.zeros((1, 3), np.float32), limits=LIMITS)
    assert out.shape == (1, 2)


def test_a_pickle_is_never_loaded_even_when_passed_directly():
    with pytest.raises(SandboxCrashed):
        run_model(packages.pickle_model_bytes(), np.zeros((1, 3), np.float32), limits=LIMITS)


# --- isolation: fail closed, the development escape hatch, folders, logs ----------------------
@pytest.fixture
def without_bwrap(monkeypatch):
    """This process sees no bubblewrap (as on a machine where it is not installed)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    isolation.probe.cache_clear()
    yield
    monkeypatch.undo()
    isolation.probe.cache_clear()


def test_without_isolation_uploaded_code_is_refused_with_a_named_error(without_bwrap, settings):
    settings.LWM_SANDBOX_ALLOW_UNISOLATED = False
    status = isolation.isolation_status()
    assert not status["ok"] and status["mode"] == "refused" and "bubblewrap" in status["reason"]
    with pytest.raises(SandboxIsolationUnavailable) as caught:
        run_model(packages.linear_model_bytes(3, 2), np.zeros((1, 3), np.float32), limits=LIMITS)
    assert caught.value.code == "sandbox:unavailable-isolation"
    assert isinstance(
        caught.value, SandboxUnavailable
    )  # our side: the job is retried, not blamed on the uploader


def test_the_unisolated_development_mode_runs_only_when_named_and_warns_on_every_call(
    without_bwrap, settings, caplog
):
    settings.LWM_SANDBOX_ALLOW_UNISOLATED = True
    assert (
        isolation.isolation_status()["mode"] == "unisolated"
        and "WITHOUT isolation" in isolation.isolation_status()["warning"]
    )
    for _ in range(2):
        out = run_model(packages.linear_model_bytes(3, 2), np.ones((2, 3), np.float32), limits=LIMITS)
        assert out.shape == (2, 2)
    assert sum("WITHOUT isolation" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 2


def test_calls_use_0700_folders_under_a_private_parent_and_leave_none_behind():
    run_model(packages.linear_model_bytes(3, 2), np.zeros((1, 3), np.float32), limits=LIMITS)
    parent = fork_server.private_calls_folder(isolation.probe())
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700  # mkdtemp: the call folders inside are 0700 too
    assert parent.stat().st_uid in (os.geteuid(), isolation.NOBODY)  # 65534: bwrap runs as that account
    assert [p.name for p in parent.iterdir()] == ["server.log"]


def test_the_log_returned_to_the_uploader_has_no_server_paths_and_is_bounded():
    call = Path(tempfile.gettempdir()) / "lwm-sandbox-0-abc" / "xyz"
    text = (
        f'File "{isolation.ROOT}/workers/sandbox/child.py", line 3\n'
        f'File "{Path(sys.prefix).resolve()}/lib/python3.11/site-packages/torch/jit/_serialization.py"\n'
        f'File "{Path(sys.base_prefix).resolve()}/lib/python3.11/json/decoder.py"\n'
        f"open {call}/in/artifact /sandbox/in/inputs.npy {Path.home()}/.cache\x1b[31m\n"
    ) + "x" * 10000
    scrubbed = sandbox_log.scrub_log(text, call)
    assert len(scrubbed) == sandbox_log.LOG_CHARS
    head = sandbox_log.scrub_log(text[:-10000], call)
    for path in (
        str(isolation.ROOT),
        sys.prefix,
        sys.base_prefix,
        str(call),
        "/sandbox/in",
        str(Path.home()),
        "\x1b",
    ):
        assert path not in head
    assert "<code>/workers/sandbox/child.py" in head and "<venv>/lib/python3.11/site-packages/torch" in head
    assert "<call>/in/artifact" in head and "<call>/inputs.npy" in head


def test_media_files_and_folders_are_private_to_the_service_account(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=tmp_path / "media")
    name = storage.save("submissions/7/data.csv", ContentFile(b"private,rows\n"))
    path = Path(storage.path(name))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
