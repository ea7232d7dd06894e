"""A learnware package on the server: the shared checks of :mod:`specs.packaging`, Django errors.

``package_inspect(bytes)`` runs every check that needs no model loading (zip
safety, manifest, artifact format, no pickles, spec present) and returns the
parts; the worker's sandbox does the rest. Format: ``docs/package-format.md``.
The checks themselves live in :mod:`specs.packaging`, which the client runs too;
here their :class:`InvalidPackageError` becomes a :class:`ValidationFailed`
with the same code, message and details.
"""

from __future__ import annotations

import io
import zipfile

from marketplace.core.exceptions import ValidationFailed
from specs.packaging import InvalidPackageError, Package, ZipLimits
from specs.packaging import package_inspect as _inspect

__all__ = ["Package", "ZipLimits", "package_inspect", "package_without"]


def package_inspect(data: bytes, *, limits: ZipLimits | None = None, require_spec: bool = True) -> Package:
    """Check a package without loading its model; return its parts.

    Raises
    ------
    ValidationFailed
        With an ``upload:user:*`` code naming the bad file or manifest field.
    """
    try:
        return _inspect(data, limits=limits, require_spec=require_spec)
    except InvalidPackageError as exc:
        raise ValidationFailed(exc.message, code=exc.code, details=exc.details) from None


def package_without(data: bytes, names: set[str]) -> bytes:
    """The same zip minus ``names``, rewritten deterministically (dates and order kept)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename in names or info.is_dir():
                continue
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            target.writestr(copy, source.read(info))
    return out.getvalue()
