"""Account pages (portal, server-rendered): sign up, rate-limited log in, profile, API tokens, my
learnwares and submissions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.accounts import ratelimit
from marketplace.accounts.forms import ProfileForm, SignUpForm, TokenCreateForm
from marketplace.accounts.models import ApiToken
from marketplace.accounts.request_user import request_user
from marketplace.accounts.services import api_token_create, api_token_revoke
from marketplace.core.client_ip import client_ip
from marketplace.core.exceptions import ApplicationError
from marketplace.learnwares.selectors import learnware_list
from marketplace.submissions.selectors import submission_list

SHOWN_TOKEN_KEY = "portal:new-token"


def _client_ip(request: HttpRequest) -> str:
    return client_ip(request.META)


def login_limits() -> tuple[int, int]:
    """(failed attempts allowed per username and address, window in seconds)."""
    return settings.LWM_LOGIN_MAX_ATTEMPTS, settings.LWM_LOGIN_WINDOW_SECONDS


class RateLimitedLoginView(auth_views.LoginView):
    """Django's login, refusing a username or an address after too many failed attempts."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limit, window = login_limits()
        username = str(request.POST.get("username", "")).strip().lower()
        idents = [("login-user", f"{username}|{_client_ip(request)}"), ("login-ip", _client_ip(request))]
        # An address gets more tries than one username from it: many people may share one NAT.
        limits = {"login-user": limit, "login-ip": limit * 5}
        if any(ratelimit.is_limited(scope, ident, limit=limits[scope]) for scope, ident in idents):
            form = self.get_form()
            form.is_bound = False
            context = self.get_context_data(form=form, rate_limited=True, retry_minutes=max(1, window // 60))
            return self.render_to_response(context, status=429)
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            ratelimit.reset(*idents[0])
        else:
            for scope, ident in idents:
                ratelimit.hit(scope, ident, window=window)
        return response


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("account")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("account")
    context = {
        "form": form,
        "token_count": ApiToken.objects.filter(user=request_user(request), revoked_at__isnull=True).count(),
    }
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, key = api_token_create(user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
        except ApplicationError as exc:
            form.add_error("name", exc.message)
        else:
            # Shown once, on the page the redirect leads to, then forgotten.
            request.session[SHOWN_TOKEN_KEY] = {"id": token.id, "key": key}
            return redirect("account-tokens")
    shown = request.session.pop(SHOWN_TOKEN_KEY, None)
    context = {
        "form": form,
        "tokens": ApiToken.objects.filter(user=request_user(request)),
        "new_token": shown,
        "site_url": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "accounts/tokens.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = api_token_revoke(user=request.user, token_id=token_id)  # type: ignore[arg-type]
    except ApplicationError as exc:
        return render(
            request,
            "portal/error.html",
            {"code": 404, "title": "Not found", "detail": exc.message},
            status=404,
        )
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("account-tokens")


@login_required
def my_learnwares(request: HttpRequest) -> HttpResponse:
    items = learnware_list(
        user=request.user, filters={"owner": request.user.get_username()}
    ).prefetch_related("versions")
    return render(request, "accounts/learnwares.html", {"learnwares": items})


@login_required
def my_submissions(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/submissions.html", {"submissions": submission_list(user=request.user)})
