"""One error family for the pure library: every failure raises a ``SpecError``.

Callers (API views, workers, the client) catch ``SpecError`` and show its message,
so each message names the bad argument, field or shape.
"""

from __future__ import annotations


class SpecError(ValueError):
    """Base class of every error raised by :mod:`specs`."""

    code = "spec:error"


class InvalidDataError(SpecError):
    """Input data are unusable: NaN/inf, empty, wrong rank or dtype."""

    code = "spec:invalid-data"


class InvalidParameterError(SpecError):
    """A parameter is out of range (K <= 0, gamma <= 0, unknown option...)."""

    code = "spec:invalid-parameter"


class DimensionMismatchError(SpecError):
    """Two objects that must share a dimension do not (specs of different d, ...)."""

    code = "spec:dimension-mismatch"


class IncompatibleSpaceError(SpecError):
    """Two specifications or modules live in different feature spaces / base models."""

    code = "spec:incompatible-space"


class SerializationError(SpecError):
    """A serialised object is malformed: version, field, shape, dtype or finiteness."""

    code = "spec:serialization"


class NotFittedError(SpecError):
    """A method that needs ``fit`` was called before it."""

    code = "spec:not-fitted"
