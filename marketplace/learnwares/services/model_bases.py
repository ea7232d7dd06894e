"""Text models (heads on sentence embeddings) that name the base model whose embeddings they take.

A text model's manifest may say ``base_model: <key>``, as an adapter's does: the key of a visible,
published text base model (``kind: base_model``). The model then takes that base's pooled,
L2-normalised embeddings (``hidden_size`` wide), its RKME lives in the base's encoder space
``text-<key>`` (``services.adapter_bases.base_space_defaults``) and it is indexed there, so only data
embedded by the same base is compared with it. Naming the market's MiniLM (its key or an alias) is
the same as naming nothing: the ``text-minilm-l6-v2`` space. The input width is checked when the
model publishes, by running it in the sandbox (``workers.pipelines.publish_text_model``).
"""

from __future__ import annotations

from typing import Any

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Kind, Modality
from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion
from marketplace.learnwares.services.adapter_bases import (
    base_model_version,
    published_base_row,
    unknown_base_model,
    visible_base,
)
from marketplace.learnwares.services.registered import MINILM_KEY


def names_a_base(manifest: dict[str, Any]) -> bool:
    """A text model whose manifest names a base model (adapters have their own path)."""
    return bool(
        manifest.get("kind") == Kind.MODEL
        and manifest.get("modality") == Modality.TEXT
        and manifest.get("base_model")
    )


def _minilm(wanted: str) -> BaseModel | None:
    row = BaseModel.objects.filter(key=MINILM_KEY).first()
    return row if row is not None and (wanted == row.key or wanted in (row.aliases or [])) else None


def text_model_base(*, wanted: str, user: Any) -> BaseModel:
    """The registry row of the base a text model names: the MiniLM, or a published text base model
    ``user`` may see that has a published version.

    Raises
    ------
    ValidationFailed
        ``upload:user:unknown-base-model`` (no such base, one hidden from ``user`` — named as
        unknown, so its existence does not leak — or one without a published version);
        ``upload:user:base-model-modality`` for an image base model.
    """
    minilm = _minilm(wanted)
    if minilm is not None:
        return minilm
    row = visible_base(wanted=wanted, user=user)
    if row is None:
        raise unknown_base_model(wanted)
    if row.modality != Modality.TEXT:
        raise ValidationFailed(
            f"field 'base_model': {wanted!r} is a {row.modality} base model; a text model takes the "
            "embeddings of a text base model",
            code="upload:user:base-model-modality",
            details={"base_model": wanted, "modality": row.modality},
        )
    base_model_version(row)  # raises unknown-base-model when no version is published (any more)
    return row


def published_text_base(manifest: dict[str, Any]) -> BaseModel | None:
    """The published base (not the MiniLM) whose space a text model's manifest puts it in, else None.

    The upload already checked the name (:func:`text_model_base`); this only finds the row again.
    """
    return published_base_row(str(manifest.get("base_model") or "")) if names_a_base(manifest) else None


def same_base(learnware: Learnware, base: BaseModel | None) -> bool:
    """A new version of a text model keeps its encoder space (the MiniLM named or not is one space)."""

    def space_of(row: BaseModel | None) -> str:
        return row.key if row is not None and row.key != MINILM_KEY else MINILM_KEY

    return space_of(learnware.base_model) == space_of(base)


def version_pin_base(*, version: LearnwareVersion, pin: dict[str, Any]) -> None:
    """Record the base version a text model's version was checked against (``publish_text_model.base_pin``):
    the one a client runs it on, whatever the base publishes later."""
    LearnwareVersion.objects.filter(id=version.id).update(base_pin=pin)
    version.base_pin = pin
