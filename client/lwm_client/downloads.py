"""Verified downloads: a package is streamed to a ``.part`` file and kept only when its sha256 matches."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lwm_client.errors import IntegrityError
from lwm_client.http import Transport
from lwm_client.models import Download


def is_folder_target(target: Path) -> bool:
    """A download destination is a folder (created if missing) unless it names a .zip file:
    ``--download ./out`` writes ``./out/submission-….zip``, as the quickstart shows."""
    return target.is_dir() or target.suffix.lower() != ".zip"


def download_verified(http: Transport, path: str, dest: Path, expected: str | None) -> Download:
    """Stream ``path`` to ``dest``; raise :class:`IntegrityError` (and keep nothing) when its sha256 differs
    from the announced (``X-Checksum-SHA256``) or ``expected`` one."""
    response = http.send("GET", path, stream=True)
    announced = response.headers.get("X-Checksum-SHA256") or expected
    digest, size = hashlib.sha256(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with open(part, "wb") as handle:
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    sha = digest.hexdigest()
    if not announced or sha != announced or (expected and sha != expected):
        part.unlink(missing_ok=True)
        raise IntegrityError(
            f"{path}: downloaded sha256 {sha} does not match {announced or 'no announced checksum'}",
            code="download:app:checksum-mismatch",
            details={"got": sha, "expected": announced},
        )
    part.replace(dest)
    from lwm_client.isolated import remember_verified

    remember_verified(sha, f"{http.config.url}/{path}")  # Client.load runs it in-process (docs/security.md)
    return Download(path=dest, sha256=sha, size=size)
