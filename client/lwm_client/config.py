"""Where the server is and who you are: arguments > environment > config file.

The config file is ``$LWM_CONFIG`` or ``~/.config/lwm/config.json`` (``$XDG_CONFIG_HOME``
honoured), written by ``lwm login`` with mode 0600, holding ``{"url", "token", "username"}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from lwm_client.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0


def config_path() -> Path:
    explicit = os.environ.get("LWM_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "lwm" / "config.json"


def read_config_file(path: Path | None = None) -> dict[str, str]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"config file {path} is not readable JSON: {exc}", code="config:user:unreadable"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object", code="config:user:unreadable")
    return {k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))}


def write_config_file(values: dict[str, str], path: Path | None = None) -> Path:
    """Write the config file atomically, readable by its owner only (it holds a token)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    os.replace(part, path)
    return path


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def resolve(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        path: Path | None = None,
    ) -> Config:
        """Each value from the first place that has it: argument,
        ``LWM_URL``/``LWM_TOKEN``/``LWM_TIMEOUT``, file."""
        stored = read_config_file(path)
        final_url = url or os.environ.get("LWM_URL") or stored.get("url") or DEFAULT_URL
        final_token = token or os.environ.get("LWM_TOKEN") or stored.get("token") or None
        raw_timeout = (
            timeout
            if timeout is not None
            else os.environ.get("LWM_TIMEOUT") or stored.get("timeout") or DEFAULT_TIMEOUT
        )
        try:
            seconds = float(raw_timeout)
        except ValueError:
            raise ConfigError(
                f"LWM_TIMEOUT must be a number of seconds, got {raw_timeout!r}", code="config:user:timeout"
            ) from None
        if not final_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the server URL must start with http:// or https://, got {final_url!r}",
                code="config:user:url",
            )
        return cls(url=final_url.rstrip("/"), token=final_token, timeout=seconds)
