"""Errors by meaning: what went wrong, not which HTTP status carried it.

Every error the client raises on purpose subclasses :class:`LwmError` and keeps the
server's stable ``code`` (e.g. ``upload:user:path-traversal``), its ``message`` and
``details``; the HTTP status is kept as ``status`` for logs.
"""

from __future__ import annotations

from typing import Any


class LwmError(Exception):
    """Base of every error of the client."""

    def __init__(
        self, message: str, *, code: str = "", details: Any = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details if details is not None else {}
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "status": self.status,
        }


class ConfigError(LwmError):
    """No server URL, no token where one is needed, or an unreadable config file."""


class BadRequest(LwmError):
    """The server refused the request's input (400/413/422); ``details`` names the fields."""


class Unauthorized(LwmError):
    """Missing, wrong or revoked token, or wrong username/password (401)."""


class Forbidden(LwmError):
    """Authenticated, but not allowed to do this (403)."""


class NotFound(LwmError):
    """The object does not exist or is not visible to you (404)."""


class Conflict(LwmError):
    """The object is not in a state that allows this yet (409), e.g. a package not built yet."""


class RejectedUpload(LwmError):
    """A package was refused, at upload or by the publish pipeline; ``reasons`` lists why."""

    def __init__(self, message: str, *, reasons: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reasons = reasons or []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reasons": self.reasons}


class JobFailed(LwmError):
    """A server job (a submission's pipeline, a search job) ended failed, rejected or cancelled."""


class RateLimited(LwmError):
    """Too many requests (429); ``retry_after`` is the server's hint in seconds (or None)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class ServerError(LwmError):
    """The server failed (500 and other 5xx that retrying will not fix)."""


class TransientError(LwmError):
    """A failure that may pass: connection refused or reset, timeout, 502/503/504 (after retries)."""


class IntegrityError(LwmError):
    """Downloaded bytes do not match the sha256 the server announced."""


class PackageError(LwmError):
    """A local package failed the checks the server runs at upload (same ``upload:user:*`` codes)."""


class UnsafeArtifactError(LwmError):
    """An artifact is not TorchScript / safetensors, or fails the format checks (a pickle is never loaded)."""


_BY_STATUS: dict[int, type[LwmError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
}


def error_for_status(status: int, body: Any, retry_after: float | None = None) -> LwmError:
    """The typed error for an HTTP error response (``body`` is the parsed JSON or text)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {"code": f"http:{status}", "message": (str(body)[:500] or f"HTTP {status}"), "details": {}}
    code, message, details = str(err.get("code", "")), str(err.get("message", "")), err.get("details") or {}
    if status == 429:
        return RateLimited(message, retry_after=retry_after, code=code, details=details, status=status)
    if status == 400 and code.startswith("upload:"):
        return RejectedUpload(
            message,
            reasons=[{"code": code, "message": message, "details": details}],
            code=code,
            details=details,
            status=status,
        )
    if status >= 500:
        cls: type[LwmError] = TransientError if status in (502, 503, 504) else ServerError
        return cls(message, code=code, details=details, status=status)
    return _BY_STATUS.get(status, BadRequest)(message, code=code, details=details, status=status)
