"""``learnware.yaml`` rules live in :mod:`specs.packaging.manifest`; re-exported for forms and APIs."""

from specs.packaging.manifest import KNOWN_LICENSES, MANIFEST_NAME

__all__ = ["KNOWN_LICENSES", "MANIFEST_NAME"]
