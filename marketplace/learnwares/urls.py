from django.urls import URLPattern, URLResolver, path

from marketplace.learnwares import apis

urlpatterns: list[URLPattern | URLResolver] = [
    path("learnwares/", apis.LearnwareListUploadApi.as_view(), name="learnware-list"),
    path("learnwares/<int:learnware_id>/", apis.LearnwareDetailApi.as_view(), name="learnware-detail"),
    path(
        "learnwares/<int:learnware_id>/versions/",
        apis.VersionListUploadApi.as_view(),
        name="learnware-versions",
    ),
    path(
        "learnwares/<int:learnware_id>/versions/<int:number>/",
        apis.VersionDetailApi.as_view(),
        name="learnware-version",
    ),
    path(
        "learnwares/<int:learnware_id>/versions/<int:number>/download",
        apis.VersionDownloadApi.as_view(),
        name="learnware-download",
    ),
    path("feature-spaces/", apis.FeatureSpaceListApi.as_view(), name="feature-space-list"),
    path("feature-spaces/<slug:key>/", apis.FeatureSpaceDetailApi.as_view(), name="feature-space-detail"),
]
