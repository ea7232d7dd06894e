"""Read an uploaded zip without trusting it: limits, paths, links, nested archives, bombs.

Every refusal is an :class:`~specs.packaging.errors.InvalidPackageError` with a stable
``upload:user:*`` code and a message that names the offending file. The server's upload
and the client's ``lwm package check`` both call :func:`read_zip`.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from specs.packaging.errors import reject

NESTED_ARCHIVE_SUFFIXES = (
    ".zip",
    ".tar",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".7z",
    ".rar",
    ".whl",
    ".jar",
    ".zst",
)
# Magic bytes of archives; model artifacts and .npz samples are zips by design and exempt.
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"\x28\xb5\x2f\xfd")
ZIP_INSIDE_ALLOWED = (".pt", ".pt2", ".npz")


@dataclass(frozen=True)
class ZipLimits:
    """Size limits of one package (bytes, file count, total expansion, per-file ratio)."""

    max_bytes: int = 200 * 2**20
    max_files: int = 200
    max_total_uncompressed: int = 512 * 2**20
    max_ratio: float = 100.0


def _check_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise reject("absolute-path", f"{name!r} is an absolute path", name)
    if ".." in PurePosixPath(name).parts:
        raise reject("path-traversal", f"{name!r} climbs out of the package with '..'", name)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise reject("symlink", f"{name!r} is a symbolic link", name)
    if name.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
        raise reject("nested-archive", f"{name!r} is an archive inside the package", name)
    return name


def _check_bomb(info: zipfile.ZipInfo, limits: ZipLimits) -> None:
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > 2**20 and ratio > limits.max_ratio:
        raise reject(
            "zip-bomb",
            f"{info.filename!r} expands {ratio:.0f}x (limit {limits.max_ratio:.0f}x)",
            info.filename,
        )


def read_zip(data: bytes, limits: ZipLimits | None = None) -> dict[str, bytes]:
    """Return ``{path: bytes}`` of the package's regular files.

    Parameters
    ----------
    data : bytes
        The uploaded zip.
    limits : ZipLimits, optional
        Defaults to ``ZipLimits()``.

    Raises
    ------
    InvalidPackageError
        ``too-large``, ``corrupt-zip``, ``too-many-files``, ``zip-bomb``, ``absolute-path``,
        ``path-traversal``, ``symlink`` or ``nested-archive``, naming the file.
    """
    limits = limits or ZipLimits()
    if len(data) > limits.max_bytes:
        raise reject("too-large", f"the package is {len(data)} bytes (limit {limits.max_bytes})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise reject("corrupt-zip", f"the package is not a readable zip file: {exc}") from None
    files = [i for i in infos if not i.is_dir()]
    if len(files) > limits.max_files:
        raise reject("too-many-files", f"the package has {len(files)} files (limit {limits.max_files})")
    declared = sum(i.file_size for i in files)
    if declared > limits.max_total_uncompressed:
        raise reject(
            "zip-bomb", f"the package expands to {declared} bytes (limit {limits.max_total_uncompressed})"
        )
    out: dict[str, bytes] = {}
    budget = limits.max_total_uncompressed
    for info in files:
        name = _check_name(info)
        _check_bomb(info, limits)
        try:
            with archive.open(info) as handle:
                content = handle.read(budget + 1)  # never trust the declared size
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise reject("corrupt-zip", f"{name!r} cannot be extracted: {exc}", name) from None
        budget -= len(content)
        if budget < 0:
            raise reject("zip-bomb", f"the package expands past {limits.max_total_uncompressed} bytes", name)
        if content.startswith(ARCHIVE_MAGIC) and not name.lower().endswith(ZIP_INSIDE_ALLOWED):
            raise reject("nested-archive", f"{name!r} is an archive inside the package", name)
        out[name] = content
    return out
