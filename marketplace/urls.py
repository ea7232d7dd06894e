from django.contrib import admin
from django.urls import include, path

from marketplace.core.views import healthz
from marketplace.portal import urls as portal_urls

admin.site.site_header = "Learnware Market administration"
admin.site.site_title = "Learnware Market admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api")),
    path("healthz", healthz, name="healthz"),
    path("", include(portal_urls)),
]

handler404 = "marketplace.portal.views.page_not_found"
handler403 = "marketplace.portal.views.permission_denied"
handler500 = "marketplace.portal.views.server_error"
handler400 = "marketplace.portal.views.bad_request"
