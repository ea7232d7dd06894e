from django.urls import URLPattern, URLResolver, path

from marketplace.search import apis

urlpatterns: list[URLPattern | URLResolver] = [
    path("search/", apis.SearchApi.as_view(), name="search-text"),
    path("search/by-data/", apis.SearchByDataApi.as_view(), name="search-by-data"),
]
