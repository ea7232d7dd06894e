"""A small fixed-window rate limiter on Django's cache (per process with LocMemCache;
shared by every web replica when CACHES points at Redis)."""

from __future__ import annotations

import hashlib

from django.core.cache import cache


def _key(scope: str, ident: str) -> str:
    # Hash the identity: usernames may hold characters a cache backend refuses in keys.
    return f"ratelimit:{scope}:{hashlib.sha256(ident.encode()).hexdigest()[:32]}"


def is_limited(scope: str, ident: str, *, limit: int) -> bool:
    """True once ``ident`` has used up ``limit`` hits in the current window."""
    return int(cache.get(_key(scope, ident), 0)) >= limit


def hit(scope: str, ident: str, *, window: int) -> int:
    """Count one hit for ``ident``; return the count in the current window."""
    key = _key(scope, ident)
    if cache.add(key, 1, timeout=window):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)
        return 1


def reset(scope: str, ident: str) -> None:
    cache.delete(_key(scope, ident))
