"""The sandbox step of a text model that names a published base model (``base_model: <key>``).

Such a model takes the base's pooled, L2-normalised embeddings, so it is probed with unit vectors of
the base's hidden size (the probe set of the base's encoder space, ``publish.probe_inputs``) in the
same sandbox call as any model. Its encoder space is made only after the probe passed (as an
adapter's is), so a refused model leaves no empty space behind; the probe reads an unsaved copy.

An input width other than the base's is refused by name (``upload:user:model-input-width``,
``details``: the base, its hidden size, the model's width): read off an ONNX graph where the graph
records it; otherwise, when the probe fails, by running the model on the widths of the other text
base models the market knows (the MiniLM's 384 first) — a head trained on another base's
embeddings is the usual cause, and saying so beats a bare crash.

The probe passed, the version is pinned (:func:`base_pin`) to the base's newest published version read
before the probe: the one it was checked against, which a client fetches to run it
(``LearnwareVersion.base_pin``); a base version published while the probe runs does not become the pin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.learnwares.models import BaseModel, FeatureSpace, LearnwareVersion
from marketplace.learnwares.packages import Package
from marketplace.learnwares.services.adapter_bases import base_space_defaults
from specs.packaging.onnx_checks import TEXT_WIDTH

Probe = Callable[..., np.ndarray]
# A probe that fails at the base's width is rerun at these many other known widths at most.
MAX_OTHER_WIDTHS = 4
# Failures of the probe run that a wrong input width causes (a shape error, or outputs of a shape
# the manifest does not say); a timeout or memory limit is the model's own.
WIDTH_SYMPTOMS = ("publish:user:crashed", "publish:user:bad-output", "publish:user:output-shape")


def width_refusal(row: BaseModel, width: int) -> ValidationFailed:
    hidden = int(row.hidden_size)
    return ValidationFailed(
        f"the model takes {width}-wide inputs; base model {row.key!r} embeds texts as {hidden}-wide "
        f"vectors: train the head on that base's embeddings (or name the base it was trained on)",
        code="upload:user:model-input-width",
        details={"base_model": row.key, "hidden_size": hidden, "input_width": width},
    )


def _space_preview(row: BaseModel, dim: int | None = None) -> FeatureSpace:
    key, fields = base_space_defaults(row)
    return FeatureSpace(key=key, **{**fields, "dim": dim or fields["dim"]})


def _other_widths(row: BaseModel) -> list[int]:
    # The MiniLM's width first, whatever the registry holds: a head trained for the market's default
    # text space is the likeliest mistake (and the registry row is data an admin may remove).
    widths = set(
        BaseModel.objects.filter(modality=Modality.TEXT).values_list("hidden_size", flat=True).distinct()
    ) - {int(row.hidden_size), TEXT_WIDTH}
    first = [TEXT_WIDTH] if int(row.hidden_size) != TEXT_WIDTH else []
    return (first + sorted(widths))[:MAX_OTHER_WIDTHS]


def _accepted_width(package: Package, row: BaseModel, probe: Probe) -> int | None:
    for width in _other_widths(row):
        try:
            probe(package=package, space=_space_preview(row, width))
        except ValidationFailed:
            continue
        return width
    return None


def text_model_probe(*, package: Package, row: BaseModel, probe: Probe) -> np.ndarray:
    """The model's outputs on the probe set of ``row``'s encoder space, run in the sandbox by
    ``probe`` (``publish.run_probe``).

    Raises
    ------
    ValidationFailed
        ``upload:user:model-input-width``, or the probe's own refusal (``publish:user:*``).
    """
    if package.artifact_format == "onnx":
        from specs.packaging.onnx_checks import input_width

        width = input_width(package.artifact_bytes)
        if width is not None and width != int(row.hidden_size):
            raise width_refusal(row, width)
    try:
        return probe(package=package, space=_space_preview(row))
    except ValidationFailed as exc:
        if exc.code not in WIDTH_SYMPTOMS:
            raise
        width = _accepted_width(package, row, probe)
        if width is None:
            raise
        raise width_refusal(row, width) from exc


def base_pin(row: BaseModel, version: LearnwareVersion) -> dict[str, Any]:
    """The pin of a text model checked against ``version`` of the base ``row`` (its newest published
    version, read once before the probe), as an adapter submission's ``recipe.base`` records its base (key,
    name, learnware id, version number and id, package sha256, folder digest, pooling, width)."""
    from workers.pipelines.reuse_base import published_base_of

    return published_base_of(row, version).card()
