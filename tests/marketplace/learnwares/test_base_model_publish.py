"""A base model (no specification) through review and a new version (adapters on it:
``test_adapter_on_published_base``)."""

from __future__ import annotations

import pytest

from marketplace.learnwares import services
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel, Specification
from marketplace.search.models import IndexChange
from tests.support.base_model_packages import base_model_folder, base_model_package

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("bert") / "model", seed=2)


def test_a_reviewed_base_model_is_approved_without_a_specification(
    settings, alice, admin_user, publish, folder
):
    settings.LWM_REVIEW_REQUIRED = True
    lw, version = publish(alice, base_model_package(folder, name="reviewed-bert"))
    assert version.status == VersionStatus.PENDING_REVIEW, version.rejection_reasons
    services.version_approve(version=version, actor=admin_user)
    version.refresh_from_db()
    assert version.status == VersionStatus.PUBLISHED
    assert not Specification.objects.filter(version=version).exists()
    assert not IndexChange.objects.filter(version_id=version.id).exists()  # nothing to index


def test_a_second_version_updates_the_same_registry_row(alice, publish, folder, tmp_path):
    lw, first = publish(alice, base_model_package(folder, name="bert-versions"))
    key = BaseModel.objects.get(learnware=lw).key
    other = base_model_folder(tmp_path / "m", seed=4)
    lw, second = publish(alice, base_model_package(other, name="bert-versions", pooling="cls"))
    assert (first.status, second.status, second.number) == (VersionStatus.PUBLISHED,) * 2 + (2,)
    row = BaseModel.objects.get(learnware=lw)
    assert row.key == key and "cls pooling" in row.description and "v2" in row.description
    assert BaseModel.objects.filter(learnware__owner=alice).count() == 1  # (the market's MiniLM has its own)
