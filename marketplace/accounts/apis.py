"""Account API: obtain a token with a password, manage named tokens, who am I."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from marketplace.accounts.models import ApiToken, User
from marketplace.accounts.request_user import request_user
from marketplace.accounts.services import api_token_create, api_token_revoke
from marketplace.core.client_ip import client_ip
from marketplace.core.exceptions import ApplicationError


class LoginThrottle(AnonRateThrottle):
    """Keyed on the real peer address (``client_ip``), never on a client-written header."""

    scope = "login"

    def get_ident(self, request: Request) -> str:
        return client_ip(request.META)


class TokenOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class TokenObtainApi(APIView):
    """Exchange a username and password for a new named API token."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [LoginThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(style={"input_type": "password"})
        name = serializers.CharField(default="cli", max_length=100)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        id = serializers.IntegerField()
        username = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request, username=data.validated_data["username"], password=data.validated_data["password"]
        )
        if user is None:
            raise ApplicationError(
                "wrong username or password", code="auth:user:bad-credentials", http_status=401
            )
        token, key = api_token_create(user=user, name=data.validated_data["name"])
        return Response(
            {"token": key, "id": token.id, "username": user.get_username()}, status=status.HTTP_201_CREATED
        )


class TokenListCreateApi(APIView):
    """List your tokens, or create one (its key is in this response only)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    class CreatedSerializer(TokenOutputSerializer):
        token = serializers.CharField()

        class Meta(TokenOutputSerializer.Meta):
            fields = [*TokenOutputSerializer.Meta.fields, "token"]

    @extend_schema(responses=TokenOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        tokens = ApiToken.objects.filter(user=request_user(request))
        return Response(TokenOutputSerializer(tokens, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = api_token_create(user=request.user, name=data.validated_data["name"])  # type: ignore[arg-type]
        body = dict(TokenOutputSerializer(token).data, token=key)
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    """Revoke one of your tokens."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        api_token_revoke(user=request.user, token_id=token_id)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    """The authenticated user."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.EmailField()
        is_staff = serializers.BooleanField()
        organizations = serializers.SerializerMethodField()

        def get_organizations(self, user: User) -> list[str]:
            return list(user.organizations.values_list("slug", flat=True))

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(request.user).data)
