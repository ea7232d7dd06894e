"""Portal pages of search (names differ from the API's ``search-*`` names on purpose)."""

from django.urls import path

from marketplace.search import views

urlpatterns = [
    path("learnwares/", views.browse, name="learnware-browse"),
    path("search/data/", views.data_search, name="data-search"),
    path("search/data/<uuid:job_id>/", views.data_search_job, name="data-search-job"),
]
