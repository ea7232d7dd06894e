"""The header of a search-index snapshot (``SpaceIndex`` and ``TextIndex``): format name and version."""

from __future__ import annotations

from typing import Any

from specs.exceptions import SerializationError

FORMAT = "lwm-search-index"
VERSION = 2  # 2: a space's store as one array of fixed-size records (streamed); 1: one array per column
SNAPSHOT_ROWS = 4096  # store records per streamed chunk (~56 MB at K = 100, d = 64, float16)


def check_header(header: dict[str, Any], kind: str) -> int:
    """The snapshot's format version (1 or 2: both are read); raises on anything else."""
    if (
        header.get("format") != FORMAT
        or header.get("version") not in (1, VERSION)
        or header.get("kind") != kind
    ):
        raise SerializationError(f"snapshot header is not a {FORMAT} v1/v{VERSION} {kind} index: {header!r}")
    return int(header["version"])
