"""Zip safety lives in :mod:`specs.packaging.zipsafe`; ``ZipLimits`` is re-exported for settings."""

from specs.packaging.zipsafe import ZipLimits

__all__ = ["ZipLimits"]
