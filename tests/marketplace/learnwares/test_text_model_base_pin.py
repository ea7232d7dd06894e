"""A text model on a published base is pinned, when it publishes, to the base version it was checked
against (``LearnwareVersion.base_pin``, shown by the version's API): the base's newest published version
then, with that version's package sha256 and folder digest (computed here from the base's own folder with
``specs.base_models.folder_digest``, independently of the worker's in-memory ``files_digest``). A later
base version does not move the pin; a new version of the model uploaded after it pins the newer base.
"""

from __future__ import annotations

import hashlib

import pytest

from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel
from specs.base_models import folder_digest
from tests.support.base_model_packages import base_model_folder, base_model_package
from tests.support.packages import build_text_model_package

HIDDEN = 32


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinned-base")
    return [base_model_folder(root / f"bert-{seed}", "bert", seed=seed) for seed in (3, 4)]


def _head(key: str, name: str, seed: int = 0) -> bytes:
    return build_text_model_package(name=name, manifest={"base_model": key}, width=HIDDEN, seed=seed)


def _expected(base_version, folder) -> dict:
    row = BaseModel.objects.get(learnware=base_version.learnware)
    return {
        "key": row.key,
        "name": row.name,
        "learnware_id": base_version.learnware_id,
        "version": base_version.number,
        "version_id": base_version.id,
        "package_sha256": base_version.artifact_sha256,
        "folder_digest": folder_digest(folder),
        "pooling": "mean",
        "dim": HIDDEN,
    }


def test_a_head_is_pinned_to_the_base_version_it_was_checked_against(alice, publish, folders, client_for):
    first = base_model_package(folders[0], name="pinned-bert")
    base_lw, v1 = publish(alice, first)
    assert v1.status == VersionStatus.PUBLISHED, v1.rejection_reasons
    assert v1.artifact_sha256 == hashlib.sha256(first).hexdigest()
    key = BaseModel.objects.get(learnware=base_lw).key

    head_lw, head_v1 = publish(alice, _head(key, "pinned-head"))
    assert head_v1.status == VersionStatus.PUBLISHED, head_v1.rejection_reasons
    assert head_v1.base_pin == _expected(v1, folders[0])

    # The base publishes a version with other weights: the published head keeps its pin.
    _, v2 = publish(alice, base_model_package(folders[1], name="pinned-bert"), learnware=base_lw)
    assert (v2.status, v2.number) == (VersionStatus.PUBLISHED, 2), v2.rejection_reasons
    assert folder_digest(folders[0]) != folder_digest(folders[1])
    head_v1.refresh_from_db()
    assert head_v1.base_pin["version_id"] == v1.id

    # A new version of the head uploaded now is checked against, and pinned to, the newer base.
    _, head_v2 = publish(alice, _head(key, "pinned-head", seed=2), learnware=head_lw)
    assert head_v2.status == VersionStatus.PUBLISHED, head_v2.rejection_reasons
    assert head_v2.base_pin == _expected(v2, folders[1])

    # The version's API shows each pin.
    api = client_for(alice)
    for version, base_version in ((head_v1, v1), (head_v2, v2)):
        r = api.get(f"/api/v1/learnwares/{head_lw.id}/versions/{version.number}/")
        assert r.status_code == 200, r.json()
        assert r.json()["base_pin"]["version_id"] == base_version.id
        assert r.json()["base_pin"]["package_sha256"] == base_version.artifact_sha256


def test_a_head_on_the_minilm_and_a_base_model_have_no_pin(alice, publish, folders):
    _, minilm_head = publish(alice, build_text_model_package(name="unpinned-head"))
    assert minilm_head.status == VersionStatus.PUBLISHED, minilm_head.rejection_reasons
    _, base = publish(alice, base_model_package(folders[0], name="unpinned-bert"))
    assert (minilm_head.base_pin, base.base_pin) == ({}, {})


def test_a_base_version_published_while_the_probe_runs_does_not_become_the_pin(
    alice, publish, folders, monkeypatch
):
    from workers.pipelines import publish as pipeline

    base_lw, v1 = publish(alice, base_model_package(folders[0], name="raced-bert"))
    assert v1.status == VersionStatus.PUBLISHED, v1.rejection_reasons
    key = BaseModel.objects.get(learnware=base_lw).key
    probe, newer = pipeline.text_model_probe, []

    def probe_then_publish_v2(**kwargs):
        outputs = probe(**kwargs)  # the head is checked against v1 ...
        newer.append(publish(alice, base_model_package(folders[1], name="raced-bert"), learnware=base_lw)[1])
        return outputs  # ... and v2 is the base's newest by the time the pin is written

    monkeypatch.setattr(pipeline, "text_model_probe", probe_then_publish_v2)
    _, head = publish(alice, _head(key, "raced-head"))
    assert head.status == VersionStatus.PUBLISHED, head.rejection_reasons
    assert (newer[0].status, newer[0].number) == (VersionStatus.PUBLISHED, 2), newer[0].rejection_reasons
    assert head.base_pin == _expected(v1, folders[0])
