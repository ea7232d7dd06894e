from django.contrib import admin

from marketplace.submissions.models import Submission


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "name",
        "modality",
        "task",
        "feature_space",
        "created_at",
        "data_deleted_at",
    )
    list_filter = ("modality", "task")
    search_fields = ("id", "name", "owner__username")
    # The user's data stay private: admins see the metadata and results, not a link to the files.
    exclude = ("data_file", "labelled_file")
    readonly_fields = [
        f.name for f in Submission._meta.fields if f.name not in ("data_file", "labelled_file")
    ]
