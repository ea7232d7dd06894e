"""OpenAPI schema tweaks shared by every app."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema


class AutoSchema(_AutoSchema):
    """Name nested serializers after their view (``TokenObtainApi.InputSerializer`` ->
    ``TokenObtainApiInput``), so HackSoft-style nested ``InputSerializer`` classes never collide."""

    def _get_serializer_name(self, serializer: Any, direction: str, *args: Any) -> str:
        name = super()._get_serializer_name(serializer, direction, *args)
        qualname = type(serializer).__qualname__
        if "." in qualname and "<locals>" not in qualname:
            owner = qualname.split(".")[-2]
            if not name.startswith(owner):
                name = owner + name
        return name


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "marketplace.accounts.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A named API token: `Authorization: Bearer lwm_…`",
        }
