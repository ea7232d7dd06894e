"""One DRF exception handler: every error renders as ``{"error": {code, message, details, request_id}}``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from marketplace.core.exceptions import ApplicationError
from marketplace.core.faults import infrastructure_part
from marketplace.core.middleware import unavailable_body
from marketplace.core.request_id import with_request_id


def _first_message(detail: Any, path: str = "") -> tuple[str, str]:
    """Return (field path, message) of the first error in a nested DRF detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = key if not path else f"{path}.{key}"
            if key == "non_field_errors":
                sub = path
            return _first_message(value, sub)
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], (dict, list)):
            for index, value in enumerate(detail):
                if value:
                    return _first_message(value, f"{path}[{index}]")
        return _first_message(detail[0], path)
    return path, str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _error_response(exc, context)
    if response is not None and isinstance(response.data, dict):
        with_request_id(response.data)  # quoted by a user, it finds every log line of the call
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        response = Response({"error": exc.to_dict()}, status=exc.http_status)
        if exc.http_status in (429, 503) and isinstance(exc.details, dict) and "retry_after" in exc.details:
            response["Retry-After"] = str(int(exc.details["retry_after"]))
        return response
    if not isinstance(exc, drf_exceptions.APIException) and (part := infrastructure_part(exc)) is not None:
        # The database, broker or storage failed: "retry later", not a bug (the client retries 503).
        response = Response(unavailable_body(part), status=503)
        response["Retry-After"] = str(settings.LWM_RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    handled = exception_handler(exc, context)
    if handled is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        field, message = _first_message(exc.detail)
        code = "input:user:invalid"
        text = f"{field}: {message}" if field else message
        handled.data = {"error": {"code": code, "message": text, "details": exc.detail}}
        return handled
    detail = handled.data.get("detail", "") if isinstance(handled.data, dict) else handled.data
    code = str(getattr(getattr(exc, "detail", None), "code", None) or getattr(exc, "default_code", "error"))
    handled.data = {"error": {"code": code, "message": str(detail), "details": {}}}
    return handled
