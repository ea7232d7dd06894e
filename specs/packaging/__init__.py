"""Learnware package validation shared by the server's upload and the client's check.

Django-free: it needs only the standard library, plus PyYAML to parse
``learnware.yaml`` and safetensors to open an adapter's weights (both imported
where they are used). Every refusal is an :class:`InvalidPackageError` whose
``code`` is the stable ``upload:user:<reason>`` string.
"""

from specs.packaging.choices import ARTIFACT_FORMATS, KINDS, MODALITIES, TASKS, VISIBILITIES
from specs.packaging.errors import InvalidPackageError
from specs.packaging.manifest import KNOWN_LICENSES, MANIFEST_NAME, check_manifest, parse_manifest
from specs.packaging.package import MODEL_FILES, Package, check_torch_zip, package_inspect
from specs.packaging.zipsafe import ZipLimits, read_zip

__all__ = [
    "ARTIFACT_FORMATS",
    "KINDS",
    "KNOWN_LICENSES",
    "MANIFEST_NAME",
    "MODALITIES",
    "MODEL_FILES",
    "TASKS",
    "VISIBILITIES",
    "InvalidPackageError",
    "Package",
    "ZipLimits",
    "check_manifest",
    "check_torch_zip",
    "package_inspect",
    "parse_manifest",
    "read_zip",
]
