"""Portal pages of search: browse/search cards with facets, sort and pages; search by data."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from marketplace.core.exceptions import ApplicationError
from marketplace.jobs.choices import JobStatus
from marketplace.jobs.selectors import job_get_visible
from marketplace.learnwares.models import LearnwareVersion
from marketplace.learnwares.selectors import feature_space_list
from marketplace.portal.charts import Bar, bar_chart
from marketplace.portal.facets import FACETS, facet_counts, with_links
from marketplace.portal.forms import DataSearchForm
from marketplace.portal.spaces import space_label
from marketplace.portal.uploads import limited_upload
from marketplace.search.data import parse_rkme, spec_for_space
from marketplace.search.detect import csv_header, detect_space
from marketplace.search.file_search import file_search
from marketplace.search.results import data_result_dict
from marketplace.search.selectors import eligible_versions, search_by_data, search_text
from marketplace.search.services import search_job_create

PAGE_SIZE = 12
TEXT_CANDIDATES = 100
SORTS = {"relevance": "Relevance", "newest": "Newest", "reused": "Most reused"}
SEARCH_RKME_KEY = "portal:search-rkme"
MAX_DATA_FILE_BYTES = 20 * 2**20  # larger data: compute the RKME locally and send rkme.json


def _filters(request: HttpRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FACETS:
        if name == "tags":
            tags = [t.strip() for t in request.GET.getlist("tags") if t.strip()][:20]
            if tags:
                out["tags"] = tags
        elif request.GET.get(name, "").strip():
            out[name] = request.GET[name].strip()[:150]
    return out


def _sorted(versions: list[LearnwareVersion], sort: str) -> list[LearnwareVersion]:
    if sort == "newest":
        return sorted(
            versions, key=lambda v: (v.published_at is not None, v.published_at, v.id), reverse=True
        )
    if sort == "reused":
        return sorted(
            versions, key=lambda v: (v.learnware.reuse_count, v.learnware.download_count, v.id), reverse=True
        )
    return versions


def browse(request: HttpRequest) -> HttpResponse:
    """Text search (semantic + full text) or the newest learnwares, narrowed by facets."""
    q = request.GET.get("q", "").strip()[:500]
    filters = _filters(request)
    sort = request.GET.get("sort") or ""
    if sort not in SORTS:
        sort = "relevance" if q else "newest"
    error, scores = None, {}
    if q:
        try:
            result = search_text(user=request.user, q=q, filters=filters, k=TEXT_CANDIDATES)
        except ApplicationError as exc:
            error, versions = exc, []
        else:
            versions = [v for v, _, _ in result.items]
            scores = {v.id: cosine for v, cosine, _ in result.items}
    else:
        qs = eligible_versions(user=request.user, filters=filters).select_related(
            "learnware", "learnware__owner", "learnware__base_model"
        )
        versions = list(qs.order_by(F("published_at").desc(nulls_last=True), "-id"))
    if filters.get("tags"):  # SQLite cannot filter JSON lists in SQL; PostgreSQL already did
        versions = [v for v in versions if set(filters["tags"]) <= set(v.learnware.tags or [])]
    versions = _sorted(versions, sort)
    page = Paginator(versions, PAGE_SIZE).get_page(request.GET.get("page"))
    # Facet counts are over this query's matches, so they say what a click on them would leave.
    context = {
        "q": q,
        "filters": filters,
        "sort": sort,
        "sorts": SORTS,
        "page": page,
        "facets": with_links(facet_counts(versions), request.GET, filters),
        "error": error,
        "scores": scores,
        "total": len(versions),
        "suggestions": _suggestions(request) if q and not versions and error is None else [],
    }
    return render(request, "search/browse.html", context)


def _suggestions(request: HttpRequest, limit: int = 8) -> list[str]:
    """The market's most common tags, offered as queries when a text search found nothing."""
    versions = eligible_versions(user=request.user).select_related(
        "learnware", "learnware__owner", "learnware__base_model"
    )
    tags: list[Any] = next(
        (f["values"] for f in facet_counts(versions, limit=limit) if f["name"] == "tags"), []
    )
    return [tag for tag, _ in tags]


def _space_choices(user: Any) -> list[tuple[str, str]]:
    return [(s.key, space_label(s)) for s in feature_space_list(user=user)]


def _remember(request: HttpRequest, space: str, Z: Any, beta: Any) -> None:
    # Kept in the session (K <= 100 points) so a result's page can draw the user's data beside its spec.
    request.session[SEARCH_RKME_KEY] = {"feature_space": space, "Z": Z.tolist(), "beta": beta.tolist()}


def _mixture_chart(result: dict[str, Any]) -> Any:
    mixture = result.get("mixture")
    if not mixture or not mixture.get("proposed"):
        return None
    names = {r["version_id"]: f"{r['name']} v{r['version']}" for r in result["results"]}
    bars = [Bar(names.get(c["version_id"], str(c["version_id"])), c["weight"]) for c in mixture["components"]]
    return bar_chart(bars, title="Suggested mixture: weight of each learnware", fmt="{:.2f}", lo=0.0, hi=1.0)


def _results_context(result: dict[str, Any]) -> dict[str, Any]:
    return {"result": result, "mixture_chart": _mixture_chart(result)}


@limited_upload(lambda: MAX_DATA_FILE_BYTES)
def data_search(request: HttpRequest) -> HttpResponse:
    """Upload a CSV/NPZ or an rkme.json; see matching learnwares with MMD² and the suggested mixture."""
    spaces = _space_choices(request.user)
    # "Compare with my data" on a learnware page; "New search with these renames" on a results page.
    initial = {"feature_space": request.GET.get("space", ""), "column_map": request.GET.get("column_map", "")}
    form = DataSearchForm(request.POST or None, request.FILES or None, spaces=spaces, initial=initial)
    context: dict[str, Any] = {
        "form": form,
        "spaces": feature_space_list(user=request.user),
        "max_bytes": MAX_DATA_FILE_BYTES,
    }
    if request.method == "POST" and form.is_valid():
        upload, chosen, k = (
            form.cleaned_data["file"],
            form.cleaned_data["feature_space"],
            form.cleaned_data["k"],
        )
        column_map = form.cleaned_data.get("column_map") or {}
        try:
            content = upload.read()
            detected = detect_space(
                name=upload.name,
                content=content,
                spaces=list(feature_space_list(user=request.user)),
                chosen=chosen,
                column_map=column_map,
            )
            key = detected.space.key
            context["detected"] = detected
            if upload.name.lower().endswith(".json"):
                spec = parse_rkme(content.decode("utf-8", errors="replace"))
            elif upload.size > settings.LWM_SEARCH_INLINE_MAX_BYTES:
                if not request.user.is_authenticated:
                    raise ApplicationError(
                        "Log in to search with files over "
                        f"{settings.LWM_SEARCH_INLINE_MAX_BYTES // 1024} KB (they are processed by a "
                        "worker).",
                        code="search:user:login-required",
                    )
                job = search_job_create(
                    user=request.user,
                    feature_space=key,
                    name=upload.name,
                    content=content,
                    params={
                        "k": k,
                        "mixture": True,
                        "max_components": 3,
                        "filters": {},
                        "column_map": column_map,
                        "cross_space": True,
                    },
                )
                return redirect("data-search-job", job_id=job.id)
            elif detected.space.kind == "table" and csv_header(content) is not None:
                # Columns by name: the match (matched / missing / extra) and the other spaces sharing columns.
                body, file_spec = file_search(
                    user=request.user,
                    space=detected.space,
                    name=upload.name,
                    content=content,
                    column_map=column_map,
                    params={"k": k, "filters": {}},
                )
                if file_spec is not None:
                    _remember(request, key, file_spec.Z_, file_spec.beta_)
                context.update(_results_context(body))
                context["result_space"] = detected.space
                return render(request, "search/by_data.html", context)
            else:
                spec = spec_for_space(space=detected.space, name=upload.name, content=content)
            found = search_by_data(
                user=request.user,
                feature_space=key,
                Z=spec.Z_,
                beta=spec.beta_,
                n_samples=spec.n_samples_,
                k=k,
                user_rms=getattr(spec, "unit_rms_", None),
            )
        except ApplicationError as exc:
            context["error"] = exc
        else:
            _remember(request, key, spec.Z_, spec.beta_)
            context.update(_results_context(data_result_dict(found)))
            context["result_space"] = detected.space
    status = 400 if (form.errors or context.get("error")) else 200
    return render(request, "search/by_data.html", context, status=status)


@login_required
def data_search_job(request: HttpRequest, job_id: str) -> HttpResponse:
    """A large file's search, run by a worker: progress, then the same results page."""
    job = job_get_visible(job_id=job_id, user=request.user)
    if job is None or job.kind != "search.by_data":
        raise Http404("search not found")
    context: dict[str, Any] = {
        "job": job,
        "job_api": reverse("job-detail", args=[job.id]) if not job.is_terminal else "",
    }
    if job.status == JobStatus.SUCCEEDED and job.result:
        context.update(_results_context(job.result))
    return render(request, "search/by_data_job.html", context)
