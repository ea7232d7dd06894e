"""The /api/v1/ root: every app's API URLs, the OpenAPI schema and its interactive docs.

The docs use drf-spectacular-sidecar's pinned copies of Swagger UI and Redoc (no CDN), and
the split Swagger view serves its start-up script as a file, so the CSP needs no inline script.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

urlpatterns = [
    path("", include("marketplace.accounts.urls")),
    path("", include("marketplace.jobs.urls")),
    path("", include("marketplace.learnwares.urls")),
    path("", include("marketplace.search.urls")),
    path("", include("marketplace.submissions.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
