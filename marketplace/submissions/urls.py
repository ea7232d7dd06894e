from django.urls import path

from marketplace.submissions import apis

urlpatterns = [
    path("submissions/", apis.SubmissionListCreateApi.as_view(), name="submission-list"),
    path("submissions/<uuid:submission_id>/", apis.SubmissionDetailApi.as_view(), name="submission-detail"),
    path(
        "submissions/<uuid:submission_id>/cancel/",
        apis.SubmissionCancelApi.as_view(),
        name="submission-cancel",
    ),
    path(
        "submissions/<uuid:submission_id>/package",
        apis.SubmissionPackageApi.as_view(),
        name="submission-package",
    ),
]
