"""The log a sandbox call hands back: bounded (``LOG_CHARS``) and scrubbed of server paths."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from workers.sandbox.isolation import ROOT, SANDBOX_CALLS, SANDBOX_CODE, SANDBOX_IN, python_dirs

LOG_CHARS = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def scrub_log(text: str, call_dir: Path | None = None) -> str:
    """The last ``LOG_CHARS`` of a child's log without server paths or control characters."""
    base, venv, _ = python_dirs()
    replacements = [(str(call_dir), "<call>")] if call_dir else []
    replacements += [
        (SANDBOX_IN, "<call>"),
        (SANDBOX_CALLS, "<calls>"),
        (SANDBOX_CODE, "<code>"),
        (str(ROOT), "<code>"),
        (str(venv), "<venv>"),
        (str(base), "<python>"),
        (str(Path.home()), "~"),
        (tempfile.gettempdir() + "/", "<tmp>/"),
    ]
    for path, label in sorted(replacements, key=lambda pair: -len(pair[0])):
        if path and path != "/":
            text = text.replace(path, label)
    return _CONTROL.sub("?", text)[-LOG_CHARS:]


def tail_log(path: Path) -> str:
    """The last few ``LOG_CHARS`` of a log file (empty when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4 * LOG_CHARS))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
