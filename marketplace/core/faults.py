"""Which failures are the infrastructure's (worth retrying) rather than a bug, decided by type.

One classification serves the worker (retry a job with backoff, then fail it with
``job:infra:<part>-...``) and the web tier (answer ``503 service:unavailable``).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from marketplace.core.exceptions import TransientError

# ENOSPC/EDQUOT: the worker's own disk is full; EIO: it failed to read or write.
_DISK_ERRNOS = {errno.ENOSPC: "disk-full", errno.EDQUOT: "disk-full", errno.EIO: "disk-error"}
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EPIPE,
}
_S3_RETRYABLE_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "503",
    "500",
    "502",
    "504",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _part_of(exc: BaseException) -> str | None:
    """The part that failed, for one exception (not its causes)."""
    if isinstance(exc, TransientError):
        return exc.part
    module = type(exc).__module__
    if module.startswith("botocore"):
        import botocore.exceptions as bexc

        if isinstance(
            exc,
            (
                bexc.EndpointConnectionError,
                bexc.ConnectTimeoutError,
                bexc.ReadTimeoutError,
                bexc.ConnectionClosedError,
                bexc.HTTPClientError,
            ),
        ):
            return "storage"
        if isinstance(exc, bexc.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return "storage" if code in _S3_RETRYABLE_CODES or status in _S3_RETRYABLE_CODES else None
        return None
    name = type(exc).__name__
    if module.startswith("urllib3") and ("Timeout" in name or "Connection" in name or "Protocol" in name):
        return "storage"  # botocore's HTTP layer, when it was not wrapped
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    if module.startswith("psycopg") and name in {"OperationalError", "InterfaceError"}:
        return "database"
    if module.startswith(("kombu", "amqp", "redis")):
        if (
            "Connection" in name
            or "Timeout" in name
            or name in {"OperationalError", "RecoverableConnectionError"}
        ):
            return "broker"
        return None
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return "disk"
    if isinstance(exc, (TimeoutError, ConnectionError)) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    ):
        return "network"
    return None


def infrastructure_part(exc: BaseException) -> str | None:
    """``storage``, ``database``, ``broker``, ``disk`` or ``network`` when ``exc`` (or a cause) is a
    transient infrastructure failure; None for anything else (a bug, or the user's input)."""
    fallback = None
    for item in _chain(exc):
        part = _part_of(item)
        if part is None:
            continue
        if not isinstance(item, TransientError):
            return part  # the most specific cause says what failed
        if fallback in (None, TransientError.part):
            fallback = part  # a TransientError that names its part beats the generic one
    return fallback


def infrastructure_code(exc: BaseException, part: str) -> str:
    """The job error code once the retries are spent, e.g. ``job:infra:storage-unavailable``."""
    if part == "disk":
        for item in _chain(exc):
            if isinstance(item, OSError) and item.errno in _DISK_ERRNOS:
                return f"job:infra:{_DISK_ERRNOS[item.errno]}"
        return "job:infra:disk-error"
    return f"job:infra:{part}-unavailable"
