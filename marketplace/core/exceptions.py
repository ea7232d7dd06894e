"""Domain errors: each carries a stable ``code``, an HTTP status and optional details.

Codes are split by responsibility, e.g. ``upload:user:path-traversal`` (the user's
input was wrong) or ``publish:app:sandbox-crashed`` (our side failed).
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base of every error a service raises on purpose."""

    code = "app:error"
    http_status = 400

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, http_status: int | None = None
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details = details if details is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationFailed(ApplicationError):
    """The input is wrong; ``details`` maps each bad field or file to its reasons."""

    code = "input:user:invalid"
    http_status = 400


class NotFound(ApplicationError):
    code = "not-found"
    http_status = 404


class PermissionDenied(ApplicationError):
    code = "permission-denied"
    http_status = 403


class Conflict(ApplicationError):
    code = "conflict"
    http_status = 409


class RateLimited(ApplicationError):
    """Too much at once; ``details['retry_after']`` says when to try again (seconds)."""

    code = "rate-limited"
    http_status = 429


class TransientError(Exception):
    """A failure that is worth retrying (storage or broker briefly unavailable).

    ``part`` names what failed when its cause does not say (``storage``, ``database``, ``broker``,
    ``disk``, ``network``); a more specific cause (a botocore or OS error) wins.
    """

    part = "service"

    def __init__(self, message: str = "", *, part: str | None = None):
        super().__init__(message)
        if part is not None:
            self.part = part


class ServiceUnavailable(ApplicationError):
    """A part of the service is down; the client should retry after ``details['retry_after']``."""

    code = "service:unavailable"
    http_status = 503
