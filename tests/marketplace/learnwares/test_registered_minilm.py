"""The registered MiniLM is an ordinary ``kind: base_model`` learnware (migration 0009, issue 22).

One learnware, owned by the ``market`` system user, public, with a card and a published version whose
files ship with the product; the catalogue's kind filter lists it, model selection sees it under the
usual visibility rules, nothing can be downloaded for it, and adapters still target MiniLM.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion
from marketplace.learnwares.services.registered import MARKET_USERNAME, is_registered
from marketplace.learnwares.services.spaces import MINILM_KEY, base_model_for, base_models_register
from marketplace.search.selectors import eligible_versions
from marketplace.submissions.model_selection import visible_base_models
from workers.pipelines.model_selection import visible_embedders

migration = importlib.import_module("marketplace.learnwares.migrations.0009_minilm_learnware")
pytestmark = pytest.mark.django_db


def _minilm() -> Learnware:
    return Learnware.objects.get(owner__username=MARKET_USERNAME, slug="all-minilm-l6-v2")


def test_the_migration_and_the_command_make_one_row_however_often_they_run(django_user_model):
    Learnware.objects.filter(owner__username=MARKET_USERNAME).delete()  # as if before 0009
    base_models_register()  # the registry row (0003) and the learnware (manage.py register_base_models)
    migration.forward(apps, None)
    migration.forward(apps, None)
    base_models_register()
    rows = Learnware.objects.filter(kind="base_model", owner__username=MARKET_USERNAME)
    assert rows.count() == 1 and django_user_model.objects.filter(username=MARKET_USERNAME).count() == 1
    lw = rows.get()
    assert (lw.kind, lw.modality, lw.task, lw.visibility) == ("base_model", "text", "embedding", "public")
    assert "384-d" in lw.description and lw.license == "Apache-2.0"
    version = LearnwareVersion.objects.get(learnware=lw)
    assert version.number == 1 and version.status == "published" and is_registered(version)
    assert not version.package  # the weights ship with the product: nothing in package storage
    registry = BaseModel.objects.get(key=MINILM_KEY)
    assert registry.learnware_id == lw.id and lw.base_model_id == registry.id
    assert BaseModel.objects.filter(key=MINILM_KEY).count() == 1
    owner = lw.owner
    assert not owner.is_active and not owner.has_usable_password()  # a system account, no login

    migration.backward(apps, None)
    assert not Learnware.objects.filter(owner__username=MARKET_USERNAME).exists()
    registry.refresh_from_db()
    assert registry.learnware_id is None  # the registry row and its adapters stay


def test_the_kind_filter_lists_it_and_it_cannot_be_downloaded(alice, client_for):
    base_models_register()
    lw = _minilm()
    assert lw.id in {
        v.learnware_id for v in eligible_versions(user=AnonymousUser(), filters={"kind": "base_model"})
    }
    client = client_for(alice)
    for query in ("kind=base_model", f"base_model={MINILM_KEY}"):
        listed = client.get(f"/api/v1/search/?{query}").json()
        assert lw.id in [r["learnware_id"] for r in listed["results"]], (query, listed)
    card = client.get(f"/api/v1/learnwares/{lw.id}/").json()
    assert card["kind"] == "base_model" and card["base_model"] == MINILM_KEY
    page = client.get(f"/learnwares/{lw.id}/")
    assert page.status_code == 200 and "22.7 M parameters" in page.content.decode()
    refused = client.get(f"/api/v1/learnwares/{lw.id}/versions/1/download")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "download:user:not-downloadable"


def test_model_selection_sees_it_under_the_visibility_rules(alice, admin_user):
    base_models_register()
    lw = _minilm()
    assert [v.learnware_id for v in visible_base_models(alice)] == [lw.id]  # nothing else published
    Learnware.objects.filter(id=lw.id).update(visibility="private")  # an admin hid it
    assert visible_base_models(alice) == [] and [v.learnware_id for v in visible_base_models(admin_user)] == [
        lw.id
    ]
    Learnware.objects.filter(id=lw.id).update(visibility="public", deleted_at="2026-01-01T00:00:00Z")
    assert visible_base_models(alice) == []


def test_absent_offline_weights_skip_it_with_a_reason(alice, settings, tmp_path):
    base_models_register()
    settings.LWM_MINILM_PATH = str(tmp_path / "nowhere")  # as if the offline package were missing
    with pytest.raises(ValidationFailed) as refused:
        visible_embedders(alice)  # it was the only visible base model: a named refusal, not a crash
    assert refused.value.code == "submission:user:no-base-models"
    assert "lacks config.json" in refused.value.message


def test_the_minilm_row_with_its_learnware_still_takes_adapters():
    base_models_register()
    row = base_model_for(manifest={"kind": "adapter", "base_model": "sentence-transformers/all-MiniLM-L6-v2"})
    assert row is not None and row.key == MINILM_KEY and row.learnware_id == _minilm().id


def test_absent_offline_weights_skip_only_it_when_another_base_model_is_visible(alice, settings, tmp_path):
    base_models_register()
    other = Learnware.objects.create(
        owner=alice,
        name="tiny",
        slug="tiny",
        kind="base_model",
        modality="text",
        task="embedding",
        license="MIT",
    )
    BaseModel.objects.create(
        key="alice-tiny", name="tiny", modality="text", hidden_size=8, num_layers=2, learnware=other
    )
    Learnware.objects.filter(id=other.id).update(base_model=BaseModel.objects.get(key="alice-tiny"))
    LearnwareVersion.objects.create(learnware=other, number=1, artifact_sha256="a" * 64, status="published")
    settings.LWM_MINILM_PATH = str(tmp_path / "nowhere")
    embedders, unavailable = visible_embedders(alice)
    assert list(embedders) == ["tiny v1"]  # still ranked; its package is read only at the first cache miss
    assert [(s["name"], s["learnware_id"]) for s in unavailable] == [("all-MiniLM-L6-v2 v1", _minilm().id)]
    assert "lacks config.json" in unavailable[0]["reason"]
