from django.contrib import admin

from marketplace.search.models import IndexChange, IndexState


@admin.register(IndexState)
class IndexStateAdmin(admin.ModelAdmin):
    list_display = (
        "key",
        "generation",
        "snapshot_generation",
        "rebuilt_generation",
        "pruned_generation",
        "updated_at",
    )
    readonly_fields = (
        "key",
        "generation",
        "snapshot_generation",
        "rebuilt_generation",
        "pruned_generation",
        "snapshot_name",
        "updated_at",
    )


@admin.register(IndexChange)
class IndexChangeAdmin(admin.ModelAdmin):
    list_display = ("key", "generation", "version_id", "created_at")
    list_filter = ("key",)
