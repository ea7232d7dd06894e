from django.urls import path

from marketplace.accounts import apis

urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="token-obtain"),
    path("tokens/", apis.TokenListCreateApi.as_view(), name="token-list"),
    path("tokens/<int:token_id>/", apis.TokenRevokeApi.as_view(), name="token-revoke"),
    path("me/", apis.MeApi.as_view(), name="me-detail"),
]
