"""Adapters on a *published* base model (``kind: base_model`` learnware) and that base's encoder space.

An adapter names its base by the registry key (``base_model: <owner>-<slug>``). The base must be
visible to the uploader and have a published version; the adapter runs on the newest one, in the
sandbox, with the base's folder staged beside it (``workers.pipelines.adapter_base``). Its RKME lives
in the base's encoder space (:func:`specs.adapter_bases.encoder_space_key`): the base's declared
pooling of its last hidden state, L2-normalised, ``hidden_size`` wide, so it is compared only with
data embedded by that same base. The offline MiniLM keeps its own text space (``spaces.py``).
"""

from __future__ import annotations

from typing import Any

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Kind, Modality, VersionStatus
from marketplace.learnwares.models import BaseModel, Learnware, LearnwareVersion
from marketplace.learnwares.services.registered import MINILM_KEY
from specs.adapter_bases import encoder_space_key

# Encoder outputs are unit vectors: the same kernel width as the MiniLM text space (spaces.py).
UNIT_SPHERE_GAMMA = 1.0


def unknown_base_model(wanted: str) -> ValidationFailed:
    return ValidationFailed(
        f"field 'base_model': {wanted!r} is not a registered base model",
        code="upload:user:unknown-base-model",
        details={"base_model": wanted},
    )


def published_base_row(key: str) -> BaseModel | None:
    """The registry row of a published base model named ``key`` (None: the MiniLM, or no such row)."""
    if key == MINILM_KEY:
        return None
    return (
        BaseModel.objects.filter(key=key, learnware__isnull=False, learnware__kind=Kind.BASE_MODEL)
        .exclude(key=MINILM_KEY)
        .select_related("learnware")
        .first()
    )


def base_model_version(row: BaseModel) -> LearnwareVersion:
    """The newest published version of the base model ``row`` describes.

    Raises
    ------
    ValidationFailed
        ``upload:user:unknown-base-model``: deleted, or no version is published (any more).
    """
    lw = row.learnware
    version = (
        LearnwareVersion.objects.filter(
            learnware=lw, learnware__deleted_at__isnull=True, status=VersionStatus.PUBLISHED
        )
        .order_by("-number")
        .first()
        if lw is not None
        else None
    )
    if version is None:
        raise unknown_base_model(row.key)
    return version


def visible_base(*, wanted: str, user: Any) -> BaseModel | None:
    """The published base model named ``wanted`` (None: none, or the MiniLM), if ``user`` may see it.

    Raises
    ------
    ValidationFailed
        ``upload:user:unknown-base-model`` for a base hidden from ``user`` (named as unknown, so its
        existence does not leak).
    """
    row = published_base_row(wanted)
    if row is None:
        return None
    lw_id = row.learnware_id or 0
    visible = Learnware.objects.visible_to(user).filter(id=lw_id).exists() if user is not None else True
    if not visible:
        raise unknown_base_model(wanted)
    return row


def published_base_for(*, wanted: str, user: Any) -> BaseModel | None:
    """The published base model an adapter's manifest names, if ``user`` may see it and it has a
    published version; None when ``wanted`` names no published base (the caller tries the MiniLM).

    Raises
    ------
    ValidationFailed
        ``upload:user:unknown-base-model`` for a base hidden from ``user`` (named as unknown, so its
        existence does not leak) or one without a published version; ``upload:user:adapter-base-
        unsupported`` for an image base model.
    """
    row = visible_base(wanted=wanted, user=user)
    if row is None:
        return None
    if row.modality != Modality.TEXT:  # a LoRA on token states cannot target an image encoder
        raise ValidationFailed(
            f"field 'base_model': {wanted!r} is a {row.modality} base model; adapters target text base "
            "models (BERT, RoBERTa, ELECTRA, DistilBERT, MPNet, DeBERTa-v2)",
            code="upload:user:adapter-base-unsupported",
            details={"base_model": wanted, "modality": row.modality},
        )
    base_model_version(row)
    return row


def base_space_defaults(row: BaseModel) -> tuple[str, dict[str, Any]]:
    """(key, FeatureSpace fields) of the encoder space of the published base model ``row``."""
    pooling = str(base_model_version(row).manifest.get("pooling") or "mean")
    return encoder_space_key(row.key), {
        "kind": Modality.TEXT,
        "schema": {"encoder": row.key, "pooling": pooling, "normalize": True},
        "dim": int(row.hidden_size),
        "gamma": UNIT_SPHERE_GAMMA,
        "standardization": {},
        "encoder_id": row.key,
    }


def is_base_space(space: Any) -> bool:
    """A text space defined by a published base model (its encoder is not the offline MiniLM)."""
    return bool(space.kind == Modality.TEXT and space.encoder_id and space.encoder_id != MINILM_KEY)
