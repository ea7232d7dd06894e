"""The address a request really came from, trusting ``X-Forwarded-For`` only as far as our own proxies.

``LWM_TRUSTED_PROXIES`` (default 0) is how many reverse proxies of ours stand in front of the
web process. Each appends the address it received the request from to ``X-Forwarded-For``,
so with N trusted proxies the N-th entry from the right is the real peer, and everything to
its left was written by the client (and may be anything). With 0, the header is ignored and
the TCP peer (``REMOTE_ADDR``) is the address: rotating the header cannot escape a rate limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings


def client_ip(meta: Mapping[str, Any]) -> str:
    """The client's address from a request's ``META`` (see the module docstring)."""
    peer = str(meta.get("REMOTE_ADDR", ""))
    proxies = settings.LWM_TRUSTED_PROXIES
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR", "") or "")
    if proxies <= 0 or not forwarded.strip():
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else peer
