"""Run uploaded models in isolated, limited processes (see ``runner.run_model``, ``isolation``)."""

from workers.sandbox.errors import (
    SandboxCpuExceeded,
    SandboxCrashed,
    SandboxError,
    SandboxIsolationUnavailable,
    SandboxMemoryExceeded,
    SandboxOutputInvalid,
    SandboxRefused,
    SandboxTimeout,
    SandboxUnavailable,
)
from workers.sandbox.runner import SandboxLimits, run_model

__all__ = [
    "SandboxCpuExceeded",
    "SandboxCrashed",
    "SandboxError",
    "SandboxIsolationUnavailable",
    "SandboxLimits",
    "SandboxMemoryExceeded",
    "SandboxOutputInvalid",
    "SandboxRefused",
    "SandboxTimeout",
    "SandboxUnavailable",
    "run_model",
]
