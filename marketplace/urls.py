from django.contrib import admin
from django.urls import include, path

from marketplace.core.metrics import metrics_view
from marketplace.core.views import healthz, livez, readyz
from marketplace.portal import urls as portal_urls

admin.site.site_header = "Learnware Market administration"
admin.site.site_title = "Learnware Market admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api")),
    path("healthz", healthz, name="healthz"),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # protected: LWM_METRICS_TOKEN / LWM_METRICS_ALLOWED_IPS
    path("", include(portal_urls)),
]

handler404 = "marketplace.portal.views.page_not_found"
handler403 = "marketplace.portal.views.permission_denied"
handler500 = "marketplace.core.views.server_error"  # 503 for infrastructure failures, else the portal's 500
handler400 = "marketplace.portal.views.bad_request"
