"""Run uploaded models in limited child processes (see ``runner.run_model``)."""

from workers.sandbox.runner import (
    SandboxCpuExceeded,
    SandboxCrashed,
    SandboxError,
    SandboxLimits,
    SandboxMemoryExceeded,
    SandboxOutputInvalid,
    SandboxRefused,
    SandboxTimeout,
    SandboxUnavailable,
    run_model,
)

__all__ = [
    "SandboxCpuExceeded",
    "SandboxCrashed",
    "SandboxError",
    "SandboxLimits",
    "SandboxMemoryExceeded",
    "SandboxOutputInvalid",
    "SandboxRefused",
    "SandboxTimeout",
    "SandboxUnavailable",
    "run_model",
]
