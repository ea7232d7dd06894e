from django.contrib import admin

from marketplace.jobs.models import Job, WorkerHeartbeat


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "stage", "progress", "owner", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "message")
    readonly_fields = [f.name for f in Job._meta.fields] + ["log"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "pid", "queues", "started_at", "last_seen_at")
