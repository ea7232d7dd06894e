"""Portal pages of learnwares: the learnware page, card editing, the upload wizard, a version's publish
job."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from marketplace.core.exceptions import ApplicationError, NotFound, ValidationFailed
from marketplace.jobs.selectors import job_get_visible
from marketplace.learnwares import selectors, services
from marketplace.learnwares.choices import TERMINAL_VERSION_STATES, VersionStatus
from marketplace.learnwares.models import Learnware, LearnwareVersion, Specification
from marketplace.learnwares.services.adapter_bases import base_model_version, published_base_row
from marketplace.portal.charts import PointSet, pca_2d, scatter
from marketplace.portal.forms import CardForm, PackageUploadForm
from marketplace.portal.package_files import package_listing
from marketplace.portal.similar import similar_learnwares
from marketplace.portal.uploads import limited_upload
from marketplace.portal.usage import UsageContext, usage_tabs
from marketplace.search.store import rkme_arrays

SEARCH_RKME_KEY = "portal:search-rkme"  # the user's last search-by-data RKME, to draw beside a result


def _get(request: HttpRequest, learnware_id: int) -> Learnware:
    try:
        return selectors.learnware_get(user=request.user, learnware_id=learnware_id)
    except NotFound:
        raise Http404("learnware not found") from None


def _is_owner(request: HttpRequest, lw: Learnware) -> bool:
    return bool(request.user.is_authenticated and (request.user.is_staff or lw.owner_id == request.user.id))


def _projection(request: HttpRequest, spec: Specification | None) -> dict[str, Any] | None:
    """SVG of the RKME's reduced points (PCA to 2-D) sized by weight, with the user's search data if any."""
    if spec is None:
        return None
    Z, beta = rkme_arrays(spec.rkme)
    user: dict[str, Any] | None = request.session.get(SEARCH_RKME_KEY)
    comparable = bool(user and user.get("feature_space") == spec.feature_space.key)
    overlay = comparable and bool(request.GET.get("compare"))
    if overlay and user is not None:
        Zu, bu = np.asarray(user["Z"], dtype=np.float64), np.asarray(user["beta"], dtype=np.float64)
        P, Pu = pca_2d(Z, Zu)
        sets = [PointSet("this learnware", P, beta), PointSet("your data", Pu, bu, kind="user")]
    else:
        sets = [PointSet("this learnware", pca_2d(Z)[0], beta)]
    title = f"RKME of {spec.version}: {len(beta)} reduced points projected on their two principal axes"
    return {
        "svg": scatter(sets, title=title),
        "k": len(beta),
        "dim": Z.shape[1],
        "overlay": overlay,
        "can_compare": comparable and not overlay,
        "space": spec.feature_space,
    }


def _published_base(lw: Learnware) -> dict[str, Any]:
    """An adapter's published base model (not the offline MiniLM): its learnware and declared pooling."""
    if lw.kind != "adapter" or lw.base_model is None:
        return {}
    row = published_base_row(lw.base_model.key)
    try:
        version = base_model_version(row) if row is not None else None
    except ValidationFailed:  # the base was withdrawn: the snippet names the key only
        version = None
    if row is None or version is None:
        return {}
    return {
        "base_model_learnware_id": row.learnware_id,
        "base_model_pooling": str(version.manifest.get("pooling") or "mean"),
    }


def _usage_context(
    lw: Learnware, version: LearnwareVersion, site_url: str, sample_range: tuple[float, float] | None
) -> UsageContext:
    base = lw.base_model
    return UsageContext(
        site_url=site_url,
        learnware_id=lw.id,
        number=version.number,
        slug=lw.slug,
        sha256=version.artifact_sha256,
        kind=lw.kind,
        modality=lw.modality,
        task=lw.task,
        artifact_format=version.artifact_format,
        manifest=version.manifest or {},
        base_model_key=base.key if base else "",
        base_model_name=base.name if base else "",
        base_model_aliases=tuple(base.aliases or []) if base else (),
        **_published_base(lw),
        base_pin_version=(version.base_pin or {}).get("version"),
        sample_range=sample_range,
    )


def learnware_detail(request: HttpRequest, learnware_id: int) -> HttpResponse:
    lw = _get(request, learnware_id)
    versions = list(selectors.version_list(user=request.user, learnware=lw))
    shown = next(
        (v for v in versions if v.status == VersionStatus.PUBLISHED), versions[0] if versions else None
    )
    spec = (
        Specification.objects.filter(version=shown).select_related("feature_space").first() if shown else None
    )
    listing = (
        package_listing(shown) if shown is not None else {"files": [], "left_out": 0, "sample_range": None}
    )
    site_url = request.build_absolute_uri("/").rstrip("/")
    context = {
        "lw": lw,
        "versions": versions,
        "shown": shown,
        "spec": spec,
        "is_owner": _is_owner(request, lw),
        "projection": _projection(request, spec),
        "similar": similar_learnwares(user=request.user, version=shown) if shown is not None else [],
        "site_url": site_url,
        "files": listing,
        "usage": usage_tabs(_usage_context(lw, shown, site_url, listing["sample_range"]))
        if shown is not None and shown.status == VersionStatus.PUBLISHED
        else [],
    }
    return render(request, "learnwares/detail.html", context)


@login_required
def learnware_edit(request: HttpRequest, learnware_id: int) -> HttpResponse:
    lw = _get(request, learnware_id)
    if not _is_owner(request, lw):
        raise Http404("learnware not found")
    initial = {
        "description": lw.description,
        "tags": ", ".join(lw.tags or []),
        "license": lw.license,
        "visibility": lw.visibility,
    }
    form = CardForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.learnware_update(learnware=lw, user=request.user, data=form.cleaned_data)
        messages.success(request, "Card saved.")
        return redirect("learnware-page", learnware_id=lw.id)
    return render(
        request, "learnwares/edit.html", {"lw": lw, "form": form}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def learnware_delete(request: HttpRequest, learnware_id: int) -> HttpResponse:
    lw = _get(request, learnware_id)
    if not _is_owner(request, lw):
        raise Http404("learnware not found")
    services.learnware_delete(learnware=lw, user=request.user)
    messages.success(request, f"“{lw.name}” was deleted: it is no longer listed, found or downloadable.")
    return redirect("account-learnwares")


def _upload_limit() -> int:
    return int(settings.LWM_MAX_UPLOAD_BYTES)


@login_required
@limited_upload(_upload_limit)
def learnware_upload(request: HttpRequest) -> HttpResponse:
    """Step 1 of the wizard: pick the package (checked in the browser first, then here)."""
    target = None
    if request.GET.get("learnware"):
        target = _get(request, int(request.GET["learnware"])) if request.GET["learnware"].isdigit() else None
        if target is None or target.owner_id != request.user.id:
            raise Http404("learnware not found")
    form = PackageUploadForm(request.POST or None, request.FILES or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            lw, version, _ = services.learnware_upload(
                user=request.user, data=form.cleaned_data["package"].read(), learnware=target
            )
        except ApplicationError as exc:
            error = exc
        else:
            return redirect("version-page", learnware_id=lw.id, number=version.number)
    status = 400 if (form.errors or error) else 200
    context = {"form": form, "error": error, "target": target, "max_bytes": _upload_limit()}
    return render(request, "learnwares/upload.html", context, status=status)


def version_detail(request: HttpRequest, learnware_id: int, number: int) -> HttpResponse:
    """Step 2: follow the publish job live (stage, progress, each check, the reasons when rejected)."""
    lw = _get(request, learnware_id)
    try:
        version = selectors.version_get(user=request.user, learnware=lw, number=number)
    except NotFound:
        raise Http404("version not found") from None
    job = job_get_visible(job_id=version.job_id, user=request.user) if version.job_id else None
    finished = version.status in TERMINAL_VERSION_STATES or version.status == VersionStatus.PENDING_REVIEW
    context = {
        "lw": lw,
        "version": version,
        "job": job,
        "finished": finished,
        "is_owner": _is_owner(request, lw),
        "job_api": reverse("job-detail", args=[job.id]) if job and not finished else "",
    }
    return render(request, "learnwares/version.html", context)
