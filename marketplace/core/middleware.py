"""Unhandled database, broker and storage failures become 503 with Retry-After, never a 500.

Under /api/ the body is the error envelope ``{"error": {"code": "service:unavailable", ...}}``;
portal pages render the portal's 503 page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from marketplace.core.faults import infrastructure_part

logger = logging.getLogger(__name__)


def unavailable_body(part: str) -> dict[str, Any]:
    from marketplace.core.request_id import with_request_id

    return with_request_id(
        {
            "error": {
                "code": "service:unavailable",
                "message": f"the {part} is unavailable; retry later",
                "details": {"part": part, "retry_after": settings.LWM_RETRY_AFTER_SECONDS},
            }
        }
    )


def service_unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The 503 for ``exc`` when it is an infrastructure failure; None otherwise."""
    part = infrastructure_part(exc)
    if part is None:
        return None
    logger.warning(
        "%s %s: %s unavailable: %s: %s", request.method, request.path, part, type(exc).__name__, exc
    )
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(unavailable_body(part), status=503)
    else:
        from django.template import loader

        html = loader.get_template("portal/error_503.html").render(
            {"retry_after": settings.LWM_RETRY_AFTER_SECONDS}
        )
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(settings.LWM_RETRY_AFTER_SECONDS)
    return response


class ServiceUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return service_unavailable_response(request, exception)
