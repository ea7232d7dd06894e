"""Portal pages that belong to no domain app: home and the error pages."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from marketplace.accounts.models import User
from marketplace.jobs.models import Job


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


def home(request: HttpRequest) -> HttpResponse:
    counts = {"users": User.objects.count(), "jobs": Job.objects.count()}
    return render(request, "portal/home.html", {"counts": counts})


def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "portal/error.html", {"code": 404, "title": "Not found"}, status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "portal/error.html", {"code": 403, "title": "Forbidden"}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/error.html", {"code": 500, "title": "Something went wrong"}, status=500)
