"""The "Files and versions" tab: what a version's package holds, file by file, with sizes and sha256.

A published package never changes (its sha256 names it), so the listing is computed once per
package and cached under that digest. The zip already passed zipsafe's limits at upload; here its
members' bytes are only hashed, never executed or unpickled (the sample is read with allow_pickle=False).
For an image
learnware the sample's value range is read here too: it is what the usage snippet must say.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
from django.core.cache import cache

from marketplace.learnwares.models import LearnwareVersion

CACHE_SECONDS = 7 * 24 * 3600
MAX_LISTED = 200  # files shown; a package with more says how many were left out


@dataclass(frozen=True)
class PackageFile:
    path: str
    size: int
    sha256: str


def _value_range(raw: bytes) -> tuple[float, float] | None:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            X = data["X"] if "X" in data.files else data[data.files[0]]
            X = np.asarray(X, dtype=np.float64)
    except Exception:  # noqa: BLE001 - a sample we cannot read simply gives no range
        return None
    if X.size == 0 or not np.isfinite(X).all():
        return None
    return float(X.min()), float(X.max())


def package_listing(version: LearnwareVersion) -> dict[str, Any]:
    """{"files": [PackageFile...], "left_out": int, "sample_range": (lo, hi) | None}; empty when no
    package."""
    if not version.package or not version.artifact_sha256:
        return {"files": [], "left_out": 0, "sample_range": None}
    key = f"portal:package-files:v1:{version.artifact_sha256}"
    found = cache.get(key)
    if found is None:
        found = _read(version)
        cache.set(key, found, CACHE_SECONDS)
    return {
        "files": [PackageFile(**f) for f in found["files"]],
        "left_out": found["left_out"],
        "sample_range": tuple(found["sample_range"]) if found["sample_range"] else None,
    }


def _read(version: LearnwareVersion) -> dict[str, Any]:
    files, sample_range = [], None
    try:
        with version.package.open("rb") as handle, zipfile.ZipFile(handle) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            for info in infos[:MAX_LISTED]:
                digest, chunks = hashlib.sha256(), []
                with zf.open(info) as member:
                    for chunk in iter(partial(member.read, 1 << 20), b""):
                        digest.update(chunk)
                        if info.filename.endswith("sample.npz"):
                            chunks.append(chunk)
                files.append(asdict(PackageFile(info.filename, info.file_size, digest.hexdigest())))
                if chunks:
                    sample_range = _value_range(b"".join(chunks))
    except (OSError, zipfile.BadZipFile):
        return {"files": [], "left_out": 0, "sample_range": None}
    return {
        "files": sorted(files, key=lambda f: f["path"]),
        "left_out": max(0, len(infos) - MAX_LISTED),
        "sample_range": sample_range,
    }
