"""The signed-in user of a request, typed: for views whose permission already requires one."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.request import Request

from marketplace.accounts.models import User


def request_user(request: HttpRequest | Request) -> User:
    """``request.user`` as a ``User``; an anonymous one here is a view wired without its permission."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("sign in first")
    return user
