"""Published base models (``kind: base_model``) in the registry of base models.

A base-model learnware is an ordinary versioned learnware row with a card; when a version passes
its checks, its encoder's facts (layers, width) go into the :class:`BaseModel` registry row linked
to it, and the learnware's ``base_model`` points at that row, so ``?base_model=<key>`` lists it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.text import slugify

from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion


def _free_key(learnware: Learnware) -> str:
    """``<owner>-<slug>``, unless another row (the offline MiniLM's, another learnware's) holds it."""
    key = slugify(f"{learnware.owner.username}-{learnware.slug}")[:100] or f"base-model-{learnware.id}"
    taken = BaseModel.objects.filter(key=key).exclude(learnware=learnware).exists()
    return f"{key}-{learnware.id}" if taken else key


def base_model_publish(*, version: LearnwareVersion, facts: dict[str, Any]) -> BaseModel:
    """Create or update the registry row of ``version``'s learnware from its checked ``facts``
    (``num_layers``, ``hidden_size``, ``model_type``, ``parameters``, ``pooling``); idempotent."""
    lw = version.learnware
    description = (
        f"{facts['model_type']} {lw.modality} encoder, {facts['num_layers']} layers, "
        f"{facts['hidden_size']}-d, "
        f"{facts['parameters']:,} parameters, {facts['pooling']} pooling (published as v{version.number})"
    )
    with transaction.atomic():
        row = BaseModel.objects.select_for_update().filter(learnware=lw).first()
        fields = {
            "name": lw.name,
            "modality": lw.modality,
            "hidden_size": int(facts["hidden_size"]),
            "num_layers": int(facts["num_layers"]),
            "description": description,
        }
        if row is None:
            row = BaseModel.objects.create(key=_free_key(lw), learnware=lw, aliases=[], **fields)
        else:
            BaseModel.objects.filter(id=row.id).update(**fields)
        if lw.base_model_id != row.id:
            Learnware.objects.filter(id=lw.id).update(base_model=row)
    return row
