"""Response policy of the whole site: a Content-Security-Policy, and the portal's own error pages.

Django 5.2 has no built-in CSP; the policy is small and fixed, so a middleware is enough
(no dependency). ``DEBUG`` serves Django's technical 404/500 pages (with the URL list and
settings); the demo runs with ``DEBUG`` on, so those are replaced here by the portal's pages,
and a bare 405 (Django's ``require_POST`` answers with an empty body) gets a page too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core import signals
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("django.request")

# Scripts and everything else only from this origin. Styles also allow inline because Swagger UI
# and the admin set element styles from script; no inline <script> is served anywhere.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",  # data: for Swagger UI's icons; Markdown cards may not load remote images
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",  # Redoc runs its search in a blob worker
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

API_PREFIX = "/api/"


def content_security_policy(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return middleware


class PortalErrorPagesMiddleware:
    """404, 405 and 500 in the portal's design (JSON under /api/), also when ``DEBUG`` is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(response, "portal_error", False):
            return response
        if response.status_code == 404 and settings.DEBUG and _is_debug_page(response):
            # An unmatched URL: Django rendered its technical page before any view ran.
            return self._page(request, 404)
        if response.status_code == 405 and not response.content and not request.path.startswith(API_PREFIX):
            page = self._page(request, 405)
            page["Allow"] = response.get("Allow", "")
            return page
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG:
            return None  # handler404/handler500 already render the portal's pages
        if isinstance(exception, Http404):
            return self._page(request, 404)
        # Same log line and signal as Django's own handler: the test client still re-raises it.
        logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"status_code": 500, "request": request},
        )
        signals.got_request_exception.send(sender=None, request=request)
        return self._page(request, 500)

    def _page(self, request: HttpRequest, code: int) -> HttpResponse:
        from marketplace.core.request_id import with_request_id
        from marketplace.portal import views

        if request.path.startswith(API_PREFIX):
            messages = {
                404: ("not_found", "Not found."),
                405: ("method_not_allowed", "Method not allowed."),
                500: ("server:app:error", "Internal server error."),
            }
            error_code, message = messages[code]
            body = with_request_id({"error": {"code": error_code, "message": message, "details": {}}})
            response: HttpResponse = JsonResponse(body, status=code)
        elif code == 404:
            response = views.page_not_found(request)
        elif code == 405:
            response = views.method_not_allowed(request)
        else:
            response = views.server_error(request)
        response.portal_error = True  # type: ignore[attr-defined]
        return response


def _is_debug_page(response: HttpResponse) -> bool:
    # Django's technical 404 page says why it is shown; the portal's own pages never do.
    return b"<code>DEBUG = True</code>" in getattr(response, "content", b"")
