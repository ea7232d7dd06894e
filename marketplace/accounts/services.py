"""Writes for accounts: users and API tokens."""

from __future__ import annotations

import secrets

from django.utils import timezone

from marketplace.accounts.models import ApiToken, User
from marketplace.core.exceptions import NotFound, ValidationFailed

TOKEN_PREFIX = "lwm_"


def user_create(*, username: str, password: str, email: str = "", is_staff: bool = False) -> User:
    """Create a user. Raises ValidationFailed if the name is taken."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(f"username {username!r} is taken", details={"username": ["taken"]})
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_staff)
    user.set_password(password)
    user.save()
    return user


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; return it with its raw key, which is never retrievable again."""
    name = name.strip()
    if not name:
        raise ValidationFailed("name: a token needs a name", details={"name": ["required"]})
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=key[:12], key_hash=ApiToken.hash_key(key)
    )
    return token, key


def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens. Raises NotFound for another user's token."""
    token = ApiToken.objects.filter(user=user, id=token_id).first()
    if token is None:
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
    return token
