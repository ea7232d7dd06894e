"""Probes (/livez, /readyz, /healthz) and the server-error hook that turns infrastructure failures into
503."""

from __future__ import annotations

import hmac
import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from marketplace.core.health import run_checks


def livez(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else (wire it to the orchestrator's liveness probe)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: this replica can serve traffic (database and storage answer within the deadline)."""
    checks = run_checks(readiness_only=True)
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "down", "checks": {n: c["ok"] for n, c in checks.items()}},
        status=200 if ok else 503,
    )


def _may_see_details(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.LWM_HEALTH_TOKEN
    given = request.headers.get("X-Health-Token", "")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def healthz(request: HttpRequest) -> JsonResponse:
    """The full report (database, broker, worker, storage, index, and any registered part); 503 when
    any is down. Anonymous callers get the status only; staff or ``X-Health-Token`` get the details."""
    checks = run_checks()
    ok = all(c["ok"] for c in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "down"}
    if _may_see_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ok else 503)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an infrastructure failure is a 503 (JSON under /api/, the portal's 503 page elsewhere);
    anything else is the portal's own 500 page."""
    from marketplace.core.middleware import service_unavailable_response
    from marketplace.portal.views import server_error as portal_server_error

    exc = sys.exc_info()[1]
    response = service_unavailable_response(request, exc) if exc is not None else None
    return response if response is not None else portal_server_error(request)
