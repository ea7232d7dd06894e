"""Portal pages of submissions (names differ from the API's ``submission-*`` names on purpose)."""

from django.urls import path

from marketplace.submissions import views

urlpatterns = [
    path("tasks/new/", views.submission_new, name="submission-new"),
    path("tasks/<uuid:submission_id>/", views.submission_detail, name="submission-page"),
    path("tasks/<uuid:submission_id>/cancel/", views.submission_stop, name="submission-stop"),
    path("tasks/<uuid:submission_id>/publish/", views.submission_publish, name="submission-publish"),
]
