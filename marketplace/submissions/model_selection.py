"""A submission asking which base model to build on (``requirements.kind = "base_model"``): its checks.

The labelled sample is the task: texts with their classes (JSONL, ``{"text", "label"}``). The
checks run when the submission is created (so a mistake is answered at once, with its code) and
again in the worker before anything is embedded (``workers.pipelines.model_selection``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Kind, VersionStatus
from marketplace.learnwares.models import LearnwareVersion
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import TextData, field_error, read_texts

MIN_ROWS = 12  # the reuse pipeline's MIN_LABELLED: repeated k-fold needs rows in every fold


def visible_base_models(user: Any) -> list[LearnwareVersion]:
    """The latest published version of every base-model learnware ``user`` may see, cheapest
    encoder first (layers x width), so a time budget scores as many models as it can."""
    versions = [
        v
        for v in (
            LearnwareVersion.objects.filter(
                learnware__in=_visible_learnwares(user), status=VersionStatus.PUBLISHED
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

    return Learnware.objects.visible_to(user).filter(kind=Kind.BASE_MODEL).values("id")


def check_model_selection(
    *, user: Any, labelled: bytes | None, labelled_format: str, label_key: str = "label"
) -> TextData:
    """The labelled texts of a model-selection task, or the user error that stops it.

    Raises
    ------
    ValidationFailed
        ``submission:user:model-selection-no-labels`` (no labelled sample),
        ``submission:user:model-selection-not-text`` (not a JSONL of texts),
        ``submission:user:model-selection-one-class`` (fewer than two classes),
        ``submission:user:too-few-labels`` (fewer than 12 rows), the JSONL reader's own codes,
        ``submission:user:no-base-models`` (no published base model is visible to the user).
    """
    if labelled is None:
        raise field_error(
            "labelled",
            "choosing a base model needs a labelled sample (JSONL lines with 'text' and 'label')",
            "submission:user:model-selection-no-labels",
        )
    if labelled_format != DataFormat.JSONL:
        raise field_error(
            "labelled",
            "base models are text encoders: the labelled sample must be JSONL texts, "
            f"not {labelled_format!r}",
            "submission:user:model-selection-not-text",
        )
    texts = read_texts(labelled, field="labelled", label_key=label_key, labelled=True)
    assert texts.y is not None
    classes = np.unique(texts.y.astype(str))
    if classes.shape[0] < 2:
        raise field_error(
            "labelled",
            f"holds {classes.shape[0]} class ({', '.join(classes.tolist())}); ranking needs at least 2",
            "submission:user:model-selection-one-class",
        )
    if len(texts.texts) < MIN_ROWS:
        raise field_error(
            "labelled",
            f"{len(texts.texts)} rows are too few (at least {MIN_ROWS})",
            "submission:user:too-few-labels",
        )
    if not visible_base_models(user):
        raise ValidationFailed(
            "requirements.kind: no published base model is visible to you, so there is nothing to rank "
            "(GET /api/v1/search/?kind=base_model lists them)",
            code="submission:user:no-base-models",
            details={"requirements": ["no visible base model"]},
        )
    return texts
