from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from marketplace.core.health import run_checks


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker, worker, storage and index status; 503 when any is down."""
    checks = run_checks()
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "down", "checks": checks}, status=200 if ok else 503)
