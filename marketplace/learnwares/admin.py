"""Admin console: the review queue with the checks' log, approve / reject / yank with a reason, ban, purge."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from marketplace.core.exceptions import ApplicationError
from marketplace.learnwares import conf, services
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import (
    AuditLog,
    BaseModel,
    FeatureSpace,
    Learnware,
    LearnwareVersion,
    Specification,
)


def _with_reason(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, title: str, apply: Any
) -> HttpResponse | None:
    """Ask for a reason on an intermediate page, then apply ``apply(obj, reason)`` to each row."""
    reason = request.POST.get("reason", "").strip()
    if "confirm" not in request.POST or not reason:
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "objects": queryset,
            "action": request.POST.get("action"),
            "opts": modeladmin.model._meta,
            "missing": "confirm" in request.POST,
        }
        return TemplateResponse(request, "admin/learnwares/reason.html", context)
    done = 0
    for obj in queryset:
        try:
            apply(obj, reason)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    modeladmin.message_user(request, f"{title}: {done} done")
    return None


def _review_banner(request: HttpRequest) -> None:
    if not conf.review_required():
        messages.warning(
            request,
            "Review is off (LWM_REVIEW_REQUIRED=false): new versions are published as soon as "
            "their checks pass, so the review queue stays empty. Published versions can still be yanked.",
        )


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", pairs))


@admin.register(LearnwareVersion)
class LearnwareVersionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "artifact_format",
        "artifact_sha256",
        "created_at",
        "published_at",
        "review_link",
    )
    list_filter = ("status", "artifact_format", "learnware__kind", "learnware__modality")
    search_fields = ("learnware__name", "artifact_sha256", "learnware__owner__username")
    readonly_fields = (
        "learnware",
        "number",
        "manifest_table",
        "package_link",
        "artifact_sha256",
        "upload_sha256",
        "artifact_size",
        "artifact_format",
        "status",
        "checks_table",
        "rejection_reasons",
        "job",
        "published_at",
        "reviewed_by",
        "review_note",
        "yanked_at",
        "yank_reason",
    )
    exclude = ("manifest", "package", "checks")
    actions = ("approve", "reject", "yank")

    def get_urls(self) -> list[Any]:
        own = [
            path(
                "<int:version_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="learnwares_learnwareversion_review",
            )
        ]
        return own + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            _review_banner(request)
        return super().changelist_view(request, extra_context)

    @admin.display(description="Review")
    def review_link(self, obj: LearnwareVersion) -> str:
        if obj.status != VersionStatus.PENDING_REVIEW:
            return "—"
        return format_html(
            '<a href="{}">Review</a>', reverse("admin:learnwares_learnwareversion_review", args=[obj.id])
        )

    @admin.display(description="Package")
    def package_link(self, obj: LearnwareVersion) -> str:
        # The API download (staff may download a version in review); the storage URL of a private file is a
        # 404.
        if not obj.package:
            return "—"
        url = reverse("learnware-download", args=[obj.learnware_id, obj.number])
        return format_html('<a href="{}">Download the package</a> ({} bytes)', url, obj.artifact_size)

    @admin.display(description="Manifest")
    def manifest_table(self, obj: LearnwareVersion) -> str:
        return _rows([(k, _plain(v)) for k, v in (obj.manifest or {}).items()])

    @admin.display(description="Checks")
    def checks_table(self, obj: LearnwareVersion) -> str:
        return _rows(
            [
                (
                    ("passed" if c.get("ok") else "FAILED") + " " + str(c.get("check", "")),
                    c.get("message", ""),
                )
                for c in (obj.checks or [])
            ]
        )

    def review_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        """One pending version: its card, manifest, checks and spec projection; approve, or reject with a
        reason."""
        version = get_object_or_404(
            LearnwareVersion.objects.select_related("learnware", "learnware__owner"), id=version_id
        )
        error = ""
        if request.method == "POST":
            reason = request.POST.get("reason", "").strip()
            try:
                if "approve" in request.POST:
                    services.version_approve(version=version, actor=request.user, note=reason)
                    self.message_user(request, f"{version} approved and published.")
                else:
                    services.version_review_reject(version=version, actor=request.user, reason=reason)
                    self.message_user(request, f"{version} rejected: {reason}")
            except ApplicationError as exc:
                error = exc.message
            else:
                return HttpResponseRedirect(
                    reverse("admin:learnwares_learnwareversion_changelist") + "?status__exact=pending_review"
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Review {version}",
            "version": version,
            "opts": self.model._meta,
            "manifest": self.manifest_table(version),
            "checks": self.checks_table(version),
            "package": self.package_link(version),
            "projection": _projection_svg(version),
            "error": error,
            "pending": version.status == VersionStatus.PENDING_REVIEW,
        }
        return TemplateResponse(request, "admin/learnwares/review.html", context)

    @admin.action(description="Approve the selected versions (pending review -> published)")
    def approve(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> None:
        for version in queryset:
            try:
                services.version_approve(version=version, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)

    @admin.action(description="Reject the selected versions in review (asks for a reason)")
    def reject(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            queryset,
            "Reject versions",
            lambda v, r: services.version_review_reject(version=v, actor=request.user, reason=r),
        )

    @admin.action(description="Yank the selected published versions (asks for a reason)")
    def yank(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            queryset,
            "Yank versions",
            lambda v, r: services.version_yank(version=v, actor=request.user, reason=r),
        )


def _projection_svg(version: LearnwareVersion) -> str:
    from marketplace.portal.charts import PointSet, pca_2d, scatter
    from marketplace.search.store import rkme_arrays

    spec = Specification.objects.filter(version=version).first()
    if spec is None:
        return ""
    Z, beta = rkme_arrays(spec.rkme)
    return scatter(
        [PointSet("this version", pca_2d(Z)[0], beta)], title=f"RKME of {version}: {len(beta)} points, PCA"
    )


class VersionInline(admin.TabularInline):
    model = LearnwareVersion
    fields = ("number", "status", "artifact_sha256", "published_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Learnware)
class LearnwareAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "kind", "modality", "task", "visibility", "deleted_at", "created_at")
    list_filter = ("kind", "modality", "task", "visibility", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "owner__username", "description")
    inlines = [VersionInline]
    actions = ("ban_owner", "purge")

    @admin.action(description="Ban the owners of the selected learnwares (asks for a reason)")
    def ban_owner(self, request: HttpRequest, queryset: QuerySet[Learnware]) -> HttpResponse | None:
        banned: set[int] = set()

        def ban(lw: Learnware, reason: str) -> None:
            if lw.owner_id not in banned:
                banned.add(lw.owner_id)
                services.user_ban(user=lw.owner, actor=request.user, reason=reason)

        return _with_reason(self, request, queryset, "Ban owners", ban)

    @admin.action(description="Purge the selected deleted learnwares (files and versions)")
    def purge(self, request: HttpRequest, queryset: QuerySet[Learnware]) -> None:
        for lw in queryset:
            try:
                services.learnware_purge(learnware=lw, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{lw}: {exc.message}", messages.ERROR)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor", "learnware", "version")
    list_filter = ("action",)
    search_fields = ("action", "learnware__name", "actor__username")
    readonly_fields = ("created_at", "action", "actor", "learnware", "version", "data")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(
    FeatureSpace, list_display=("key", "kind", "dim", "gamma", "encoder_id"), list_filter=("kind",)
)
admin.site.register(BaseModel, list_display=("key", "name", "modality", "hidden_size"))
admin.site.register(
    Specification,
    list_display=("version", "feature_space", "k", "computed_from"),
    list_filter=("computed_from",),
)
