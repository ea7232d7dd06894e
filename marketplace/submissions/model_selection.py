"""A submission asking which base model to build on (``requirements.kind = "base_model"``): its checks.

The labelled sample is the task: texts with their classes (JSONL, ``{"text", "label"}``), or images
with their classes (the formats image submissions accept: a zip of PNG/JPEG files with
``labels.csv``, or an NPZ of ``images`` and ``y`` with ``modality: image``). Only base models of the
sample's modality are candidates: a text encoder cannot read images, nor an image encoder texts.
The checks run when the submission is created (so a mistake is answered at once, with its code) and
again in the worker before anything is embedded (``workers.pipelines.model_selection``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Kind, Modality, VersionStatus
from marketplace.learnwares.models import LearnwareVersion
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import TextData, field_error, read_texts
from marketplace.submissions.image_data import ImageData, read_images

MIN_ROWS = 12  # the reuse pipeline's MIN_LABELLED: repeated k-fold needs rows in every fold


def visible_base_models(user: Any, modality: str | None = None) -> list[LearnwareVersion]:
    """The latest published version of every base-model learnware ``user`` may see (of ``modality``
    when given), cheapest encoder first (layers x width), so a time budget scores as many models as it
    can."""
    learnwares = _visible_learnwares(user)
    if modality is not None:
        learnwares = learnwares.filter(modality=modality)
    versions = [
        v
        for v in (
            LearnwareVersion.objects.filter(
                learnware__in=learnwares.values("id"), status=VersionStatus.PUBLISHED
            )
            .select_related("learnware", "learnware__owner", "learnware__base_model")
            .order_by("learnware_id", "-number")
        )
    ]
    latest: dict[int, LearnwareVersion] = {}
    for v in versions:
        latest.setdefault(v.learnware_id, v)

    def cost(v: LearnwareVersion) -> tuple[int, int]:
        row = v.learnware.base_model
        return ((row.num_layers * row.hidden_size) if row is not None else 0, v.learnware_id)

    return sorted(latest.values(), key=cost)


def _visible_learnwares(user: Any) -> Any:
    from marketplace.learnwares.models import Learnware

    return Learnware.objects.visible_to(user).filter(kind=Kind.BASE_MODEL)


def _read_sample(
    labelled: bytes, labelled_format: str, label_key: str, modality: str
) -> TextData | ImageData:
    if labelled_format == DataFormat.JSONL:
        return read_texts(labelled, field="labelled", label_key=label_key, labelled=True)
    if labelled_format == DataFormat.IMAGES or (
        labelled_format == DataFormat.NPZ and modality == Modality.IMAGE
    ):
        return read_images(labelled, labelled_format, field="labelled", label_column=label_key, labelled=True)
    raise field_error(
        "labelled",
        "base models are text or image encoders: the labelled sample must be JSONL texts, a zip of "
        "PNG/JPEG images with labels.csv, or an NPZ of images and y with modality image, "
        f"not {labelled_format!r}",
        "submission:user:model-selection-not-text",
    )


def sample_modality(data: TextData | ImageData) -> str:
    """The modality of a checked sample: the base models it may be ranked on."""
    return Modality.IMAGE if isinstance(data, ImageData) else Modality.TEXT


def check_model_selection(
    *,
    user: Any,
    labelled: bytes | None,
    labelled_format: str,
    label_key: str = "label",
    modality: str = Modality.TEXT,
    adapter: bool = False,
) -> TextData | ImageData:
    """The labelled texts (or images) of a model-selection task, or the user error that stops it.

    Raises
    ------
    ValidationFailed
        ``submission:user:model-selection-no-labels`` (no labelled sample),
        ``submission:user:model-selection-not-text`` (neither JSONL texts nor images),
        ``submission:user:model-selection-one-class`` (fewer than two classes),
        ``submission:user:too-few-labels`` (fewer than 12 rows), the JSONL / image readers' own codes,
        ``submission:user:no-base-models`` (no published base model of the sample's modality is
        visible to the user), ``submission:user:model-selection-adapter-image`` (``adapter`` asked for
        images: LoRA adapters are trained on text bases only).
    """
    if labelled is None:
        raise field_error(
            "labelled",
            "choosing a base model needs a labelled sample (JSONL lines with 'text' and 'label', or "
            "images with labels)",
            "submission:user:model-selection-no-labels",
        )
    data = _read_sample(labelled, labelled_format, label_key, modality)
    assert data.y is not None
    classes = np.unique(data.y.astype(str))
    if classes.shape[0] < 2:
        raise field_error(
            "labelled",
            f"holds {classes.shape[0]} class ({', '.join(classes.tolist())}); ranking needs at least 2",
            "submission:user:model-selection-one-class",
        )
    if data.y.shape[0] < MIN_ROWS:
        raise field_error(
            "labelled",
            f"{data.y.shape[0]} rows are too few (at least {MIN_ROWS})",
            "submission:user:too-few-labels",
        )
    modality = sample_modality(data)
    if adapter and modality != Modality.TEXT:
        raise field_error(
            "requirements.adapter",
            "a LoRA adapter is trained on text base models only; this sample holds images",
            "submission:user:model-selection-adapter-image",
        )
    if not visible_base_models(user, modality):
        others = len(visible_base_models(user))  # all of the other modality: they cannot read this sample
        raise ValidationFailed(
            f"requirements.kind: no published {modality} base model is visible to you, so there is nothing "
            f"to rank{f' ({others} base model(s) of another modality cannot read it)' if others else ''} "
            "(GET /api/v1/search/?kind=base_model lists them)",
            code="submission:user:no-base-models",
            details={"requirements": [f"no visible {modality} base model"]},
        )
    return data
