"""Admin console: the review queue with the checks' log, approve / reject / yank with a reason, ban, purge."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from marketplace.core.exceptions import ApplicationError
from marketplace.learnwares import services
from marketplace.learnwares.models import AuditLog, BaseModel, FeatureSpace, Learnware, LearnwareVersion, Specification


def _with_reason(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, title: str, apply: Any) -> HttpResponse | None:
    """Ask for a reason on an intermediate page, then apply ``apply(obj, reason)`` to each row."""
    reason = request.POST.get("reason", "").strip()
    if "confirm" not in request.POST or not reason:
        context = {
            **modeladmin.admin_site.each_context(request), "title": title, "objects": queryset,
            "action": request.POST.get("action"), "opts": modeladmin.model._meta, "missing": "confirm" in request.POST,
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


@admin.register(LearnwareVersion)
class LearnwareVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "artifact_format", "artifact_sha256", "created_at", "published_at")
    list_filter = ("status", "artifact_format", "learnware__kind", "learnware__modality")
    search_fields = ("learnware__name", "artifact_sha256", "learnware__owner__username")
    readonly_fields = ("learnware", "number", "manifest", "package", "artifact_sha256", "upload_sha256", "artifact_size",
                       "artifact_format", "status", "checks", "rejection_reasons", "job", "published_at", "reviewed_by",
                       "review_note", "yanked_at", "yank_reason")
    actions = ("approve", "reject", "yank")

    @admin.action(description="Approve the selected versions (pending review -> published)")
    def approve(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> None:
        for version in queryset:
            try:
                services.version_approve(version=version, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)

    @admin.action(description="Reject the selected versions in review (asks for a reason)")
    def reject(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> HttpResponse | None:
        return _with_reason(self, request, queryset, "Reject versions",
                            lambda v, r: services.version_review_reject(version=v, actor=request.user, reason=r))

    @admin.action(description="Yank the selected published versions (asks for a reason)")
    def yank(self, request: HttpRequest, queryset: QuerySet[LearnwareVersion]) -> HttpResponse | None:
        return _with_reason(self, request, queryset, "Yank versions",
                            lambda v, r: services.version_yank(version=v, actor=request.user, reason=r))


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


admin.site.register(FeatureSpace, list_display=("key", "kind", "dim", "gamma", "encoder_id"), list_filter=("kind",))
admin.site.register(BaseModel, list_display=("key", "name", "modality", "hidden_size"))
admin.site.register(Specification, list_display=("version", "feature_space", "k", "computed_from"), list_filter=("computed_from",))
