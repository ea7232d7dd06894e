"""Every portal page: the home page here, plus each domain app's portal_urls."""

from django.urls import include, path

from marketplace.portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("marketplace.accounts.portal_urls")),
    path("", include("marketplace.learnwares.portal_urls")),
    path("", include("marketplace.search.portal_urls")),
    path("", include("marketplace.submissions.portal_urls")),
]
