"""Portal pages that belong to no domain app: home and the error pages."""

from __future__ import annotations

from django.db.models import F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketplace.learnwares.models import FeatureSpace
from marketplace.search.selectors import eligible_versions
from marketplace.submissions.models import Submission

SHOWN = 6


def home(request: HttpRequest) -> HttpResponse:
    """What the market does, live counts, the newest and most reused learnwares, a search box."""
    versions = eligible_versions(user=request.user).select_related(
        "learnware", "learnware__owner", "learnware__base_model"
    )
    counts = {
        "learnwares": versions.count(),
        "spaces": FeatureSpace.objects.filter(specifications__version__in=versions).distinct().count(),
        "submissions": Submission.objects.count(),
    }
    newest = versions.order_by(F("published_at").desc(nulls_last=True), "-id")[:SHOWN]
    # Reuse in a task first, then plain downloads: both are someone using the learnware.
    reused = versions.filter(Q(learnware__reuse_count__gt=0) | Q(learnware__download_count__gt=0)).order_by(
        "-learnware__reuse_count", "-learnware__download_count", "-id"
    )[:SHOWN]
    return render(request, "portal/home.html", {"counts": counts, "newest": newest, "reused": reused})


def _error(request: HttpRequest, code: int, title: str, detail: str = "") -> HttpResponse:
    return render(request, "portal/error.html", {"code": code, "title": title, "detail": detail}, status=code)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "Not found", "There is nothing here, or it is not visible to you.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(
        request,
        403,
        "Forbidden",
        "You are not allowed to do that. A form may also have expired: reload it and try again.",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error(
        request,
        403,
        "Forbidden",
        "The form expired or came from another site. Reload the page and try again.",
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400, "Bad request")


def method_not_allowed(request: HttpRequest) -> HttpResponse:
    return _error(
        request,
        405,
        "Method not allowed",
        "This address only accepts a form's submission. Use the page's button instead of opening the link.",
    )


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors that could fail again: a plain render of the same look.
    from django.template import loader

    html = loader.get_template("portal/error_500.html").render({})
    return HttpResponse(html, status=500)
