"""The request id: accepted from ``X-Request-ID`` or made here, bound for every log line, sent back.

A well-formed incoming id (``[A-Za-z0-9._:-]``, at most 128 characters: what proxies and
clients generate, nothing that could forge a log line) is kept, so one id follows a call
from the load balancer through the web, the job it creates and the worker that runs it;
anything else is replaced by a fresh one. The id is returned in the ``X-Request-ID``
header and in every JSON error body (``error.request_id``), and each request ends with one
access line (method, route, status, seconds) and its request metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from marketplace.core import logs

HEADER = "X-Request-ID"
logger = logging.getLogger("marketplace.request")
# Probes and scrapes come every few seconds: their successful calls are logged at DEBUG only.
QUIET_ROUTES = frozenset({"livez", "readyz", "healthz", "metrics"})


def new_request_id() -> str:
    return uuid.uuid4().hex


def with_request_id(body: dict[str, Any]) -> dict[str, Any]:
    """Add the current request id to an error envelope ``{"error": {...}}`` (in place; returned)."""
    request_id = logs.current("request_id")
    if request_id and isinstance(body.get("error"), dict):
        body["error"]["request_id"] = request_id
    return body


def route_name(request: HttpRequest) -> str:
    """The URL pattern's name (``learnware-detail``), never the raw path: bounded label values."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unnamed"


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = logs.accepted_id(request.headers.get(HEADER)) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with logs.bound(request_id=request_id):
            response = self.get_response(request)
            response[HEADER] = request_id
            self._record(request, response, time.perf_counter() - started)
        return response

    @staticmethod
    def _record(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        from marketplace.core import metrics

        route = route_name(request)
        method = request.method or "?"
        metrics.observe_request(method=method, route=route, status=response.status_code, seconds=seconds)
        level = logging.DEBUG if route in QUIET_ROUTES and response.status_code < 400 else logging.INFO
        logger.log(
            level,
            "%s %s %s %.3fs",
            method,
            request.path,
            response.status_code,
            seconds,
            extra={
                "method": method,
                "route": route,
                "status": response.status_code,
                "seconds": round(seconds, 4),
            },
        )
