"""run_model: outputs equal a direct call; crash, hang and memory hog are stopped and named."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from tests.support import packages
from workers.sandbox import (
    SandboxCpuExceeded,
    SandboxCrashed,
    SandboxLimits,
    SandboxMemoryExceeded,
    SandboxTimeout,
    run_model,
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
        run_model(packages.export_model_bytes(3, 2, seed=1), np.zeros((5, 3), np.float32), kind="torch_export", limits=LIMITS)


@pytest.mark.parametrize(("module", "error"), [(packages.Crash, SandboxCrashed), (packages.Hang, SandboxCpuExceeded),
                                               (packages.Hog, SandboxMemoryExceeded)])
def test_a_misbehaving_model_is_stopped_quickly_with_its_reason(module, error):
    started = time.monotonic()
    with pytest.raises(error) as caught:
        run_model(packages.torchscript_bytes(module()), np.zeros((2, 3), np.float32), limits=LIMITS)
    assert time.monotonic() - started < 15
    assert caught.value.message


def test_the_wall_clock_limit_kills_a_model_that_outlives_it():
    with pytest.raises((SandboxTimeout, SandboxCpuExceeded)):
        run_model(packages.torchscript_bytes(packages.Hang()), np.zeros((2, 3), np.float32),
                  limits=SandboxLimits(cpu_seconds=60, wall_seconds=1.5))


def test_the_worker_survives_and_the_sandbox_serves_again_after_a_failure():
    with pytest.raises(SandboxCrashed):
        run_model(packages.torchscript_bytes(packages.Crash()), np.zeros((1, 3), np.float32), limits=LIMITS)
    out = run_model(packages.linear_model_bytes(3, 2), np.zeros((1, 3), np.float32), limits=LIMITS)
    assert out.shape == (1, 2)


def test_a_pickle_is_never_loaded_even_when_passed_directly():
    with pytest.raises(SandboxCrashed):
        run_model(packages.pickle_model_bytes(), np.zeros((1, 3), np.float32), limits=LIMITS)
