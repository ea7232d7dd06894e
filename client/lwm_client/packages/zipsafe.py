"""Read a package zip the way the server's upload check does (same limits, same codes).

Kept in step with ``marketplace/learnwares/packages/zipsafe.py`` by
``tests/client/test_package_parity.py``, which runs both on every failure package.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from lwm_client.errors import PackageError

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".whl", ".jar", ".zst")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"\x28\xb5\x2f\xfd")
ZIP_INSIDE_ALLOWED = (".pt", ".pt2", ".npz")


@dataclass(frozen=True)
class ZipLimits:
    max_bytes: int = 200 * 2**20
    max_files: int = 200
    max_total_uncompressed: int = 512 * 2**20
    max_ratio: float = 100.0


def fail(code: str, message: str, path: str | None = None) -> PackageError:
    return PackageError(message, code=f"upload:user:{code}", details={"file": path} if path else {})


def _check_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise fail("absolute-path", f"{name!r} is an absolute path", name)
    if ".." in PurePosixPath(name).parts:
        raise fail("path-traversal", f"{name!r} climbs out of the package with '..'", name)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise fail("symlink", f"{name!r} is a symbolic link", name)
    if name.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
        raise fail("nested-archive", f"{name!r} is an archive inside the package", name)
    return name


def read_zip(data: bytes, limits: ZipLimits | None = None) -> dict[str, bytes]:
    """``{path: bytes}`` of the package's regular files, or :class:`PackageError`."""
    limits = limits or ZipLimits()
    if len(data) > limits.max_bytes:
        raise fail("too-large", f"the package is {len(data)} bytes (limit {limits.max_bytes})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise fail("corrupt-zip", f"the package is not a readable zip file: {exc}") from None
    if len(infos) > limits.max_files:
        raise fail("too-many-files", f"the package has {len(infos)} files (limit {limits.max_files})")
    if sum(i.file_size for i in infos) > limits.max_total_uncompressed:
        raise fail("zip-bomb", f"the package expands past {limits.max_total_uncompressed} bytes")
    out: dict[str, bytes] = {}
    budget = limits.max_total_uncompressed
    for info in infos:
        name = _check_name(info)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 2**20 and ratio > limits.max_ratio:
            raise fail("zip-bomb", f"{name!r} expands {ratio:.0f}x (limit {limits.max_ratio:.0f}x)", name)
        try:
            with archive.open(info) as handle:
                content = handle.read(budget + 1)  # never trust the declared size
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise fail("corrupt-zip", f"{name!r} cannot be extracted: {exc}", name) from None
        budget -= len(content)
        if budget < 0:
            raise fail("zip-bomb", f"the package expands past {limits.max_total_uncompressed} bytes", name)
        if content.startswith(ARCHIVE_MAGIC) and not name.lower().endswith(ZIP_INSIDE_ALLOWED):
            raise fail("nested-archive", f"{name!r} is an archive inside the package", name)
        out[name] = content
    return out
