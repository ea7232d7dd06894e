"""Portal pages of learnwares (names differ from the API's ``learnware-*`` names on purpose)."""

from django.urls import path

from marketplace.learnwares import views

urlpatterns = [
    path("learnwares/new/", views.learnware_upload, name="learnware-upload"),
    path("learnwares/<int:learnware_id>/", views.learnware_detail, name="learnware-page"),
    path("learnwares/<int:learnware_id>/edit/", views.learnware_edit, name="learnware-edit"),
    path("learnwares/<int:learnware_id>/delete/", views.learnware_delete, name="learnware-remove"),
    path("learnwares/<int:learnware_id>/v<int:number>/", views.version_detail, name="version-page"),
]
