"""A Redis cache that fails open: when Redis is down, reads miss and writes are dropped (logged).

Throttles and rate limits read and write through the cache; a cache outage must degrade
them to "allow", never turn a request into a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)
_LOG_EVERY_SECONDS = 30.0
_last_logged = [0.0]


def _log_outage(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_logged[0] >= _LOG_EVERY_SECONDS:  # one line per outage window, not one per request
        _last_logged[0] = now
        logger.warning("cache unavailable (%s failed open): %s: %s", operation, type(exc).__name__, exc)


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class FailOpenRedisCache(RedisCache):
    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        try:
            return super().get(key, default, version)
        except _redis_errors() as exc:
            _log_outage("get", exc)
            return default

    def get_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        try:
            return super().get_many(keys, version)
        except _redis_errors() as exc:
            _log_outage("get_many", exc)
            return {}

    def set(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> None:
        try:
            super().set(key, value, timeout, version)
        except _redis_errors() as exc:
            _log_outage("set", exc)

    def add(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except _redis_errors() as exc:
            _log_outage("add", exc)
            return True

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        try:
            return super().incr(key, delta, version)
        except _redis_errors() as exc:
            _log_outage("incr", exc)
            return delta

    def delete(self, key: Any, version: Any = None) -> bool:
        try:
            return super().delete(key, version)
        except _redis_errors() as exc:
            _log_outage("delete", exc)
            return False

    def touch(self, key: Any, timeout: Any = None, version: Any = None) -> bool:
        try:
            return super().touch(key, timeout, version)
        except _redis_errors() as exc:
            _log_outage("touch", exc)
            return False
