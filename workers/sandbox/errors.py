"""What a sandbox call can raise: one exception per outcome, each with a stable ``code``."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """The model failed in the sandbox; ``code`` says how (stable string)."""

    code = "sandbox:crashed"

    def __init__(self, message: str, *, log: str = ""):
        super().__init__(message)
        self.message, self.log = message, log


class SandboxCrashed(SandboxError):
    code = "sandbox:crashed"


class SandboxTimeout(SandboxError):
    code = "sandbox:timeout"


class SandboxCpuExceeded(SandboxError):
    code = "sandbox:cpu-limit"


class SandboxMemoryExceeded(SandboxError):
    code = "sandbox:memory-limit"


class SandboxOutputInvalid(SandboxError):
    code = "sandbox:bad-output"


class SandboxRefused(SandboxError):
    """The artifact broke a format rule checked inside the call (e.g. a TorchScript operator
    outside the allow-list); ``code`` is the rule's own ``upload:user:*`` code."""

    code = "upload:user:unsafe-operator"

    def __init__(self, message: str, *, code: str, details: dict[str, Any] | None = None, log: str = ""):
        super().__init__(message, log=log)
        self.code, self.details = code, details or {}


class SandboxUnavailable(SandboxError):
    """Our side failed (the sandbox could not start or answer): worth a retry."""

    code = "sandbox:unavailable"


class SandboxIsolationUnavailable(SandboxUnavailable):
    """This machine cannot isolate uploaded code (bubblewrap missing or refused): nothing runs."""

    code = "sandbox:unavailable-isolation"
