"""The one error of package validation: a stable ``upload:user:*`` code plus the bad file."""

from __future__ import annotations

from typing import Any

from specs.exceptions import SpecError


class InvalidPackageError(SpecError):
    """A learnware package breaks a rule of ``docs/package-format.md``.

    ``code`` is the stable ``upload:user:<reason>`` string the server and the client
    both report; ``details`` names the offending file (``{"file": path}``) or, for
    manifest fields, maps each field path to its reason.
    """

    code = "upload:user:invalid"

    def __init__(self, message: str, *, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, Any] = details if details is not None else {}


def reject(reason: str, message: str, path: str | None = None) -> InvalidPackageError:
    """An :class:`InvalidPackageError` with code ``upload:user:<reason>`` naming ``path``."""
    return InvalidPackageError(message, code=f"upload:user:{reason}", details={"file": path} if path else {})
