"""The model-selection deliverable: the logistic head on the chosen base model, or the from-scratch winner.

Built when the head is not worse than from scratch (``specs.base_model_head`` is the format and the
runtime the client shares). The head is the evaluate stage's logistic regression refitted on every
labelled row of the same features (the chosen layer of the sandbox's layer embeddings), exported as
``head.safetensors``; the base model is *referenced* (learnware id, version, package sha256, weights
sha256), never copied: the client downloads it from the market and checks it. The market's
registered MiniLM has no package: its reference names its key and the client uses its local copy.

When the head is worse, the from-scratch winner (TF-IDF + logistic regression on texts, downscaled
pixels + logistic regression on images) refitted on every labelled row is delivered instead, as data
(``specs.scratch_linear``: the vocabulary, idf and linear weights, or the pixel downscale's sizes and
the standardised head), which the client computes with numpy (:func:`scratch_package_files`). Before
``model_selection`` PIPELINE_VERSION 3 nothing was delivered then, and the stored result said so.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import yaml

from marketplace.learnwares.services.registered import is_registered
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_package_save
from specs.base_model_head import (
    HEAD_FORMAT,
    HEAD_RECIPE,
    HEAD_VERSION,
    HEAD_WEIGHTS,
    POOLING,
    fitted_head,
)
from specs.recipe import sha256_hex
from specs.scratch_linear import SCRATCH_JSON, scratch_files
from workers.pipelines.model_selection_embed import SandboxLayerEmbedder
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models
from workers.pipelines.reuse_shared import deterministic_zip

NO_PACKAGE_YET = "no package yet"  # the evaluate stage's result before model_selection_run delivers one
DELIVERED = "delivered: the package references {base} and holds the logistic head on its {layer} embedding"
DELIVERED_ADAPTER = (
    "delivered: the package holds the LoRA adapter and head trained on {base} (the adapter package "
    "format, recipe method trained_lora), which beat the frozen head by more than one standard error"
)
DELIVERED_SCRATCH = (
    "delivered: the head is worse than from scratch, so the package holds the from-scratch winner "
    "({name}) refitted on every labelled row (format lwm-scratch-linear, no base model)"
)


def _weights_sha256(embedder: SandboxLayerEmbedder) -> str:
    return sha256_hex(embedder.files()["model.safetensors"])


def base_reference(embedder: SandboxLayerEmbedder, modality: str) -> dict[str, Any]:
    """What the client needs to fetch, check and run the base model as the worker did."""
    version = embedder.version
    registered = is_registered(version)
    return {
        "name": version.learnware.name,
        "learnware_id": version.learnware_id,
        "version": version.number,
        "version_id": version.id,
        "package_sha256": None if registered else version.artifact_sha256,
        "registered": version.manifest.get("base_model") if registered else None,
        "weights_sha256": _weights_sha256(embedder),
        "modality": modality,
        "max_length": embedder.max_length,  # tokens per text (images: the side they are resized to)
        "num_layers": embedder.num_layers,
        "hidden_size": embedder.hidden_size,
    }


def package_files(
    *,
    embedder: SandboxLayerEmbedder,
    modality: str,
    layer: int | str,
    features: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    seed: int,
    evaluation: dict[str, Any],
) -> dict[str, bytes]:
    """The package's files: the head refitted on every row of ``features`` (codes ``y``)."""
    modality = str(modality)  # a Modality choice is a str subclass YAML cannot represent
    model = scratch_fit(
        scratch_models("classification", seed)["logistic_regression"], features, y, "classification"
    )
    assert not isinstance(model, int)  # check_model_selection refuses one-class samples
    own = [classes[int(c)] for c in model.classes_]
    head = fitted_head(model).to_bytes()
    base = base_reference(embedder, modality)
    recipe = {
        "format": HEAD_FORMAT,
        "version": HEAD_VERSION,
        "base_model": base,
        "layer": layer,
        "pooling": POOLING,
        "classes": own,
        "head": {"path": HEAD_WEIGHTS, "sha256": sha256_hex(head)},
        "evaluation": evaluation,
    }
    manifest = {
        "name": f"head-on-{base['name']}-v{base['version']}"[:100],
        "kind": "model",
        "modality": modality,
        "task": "classification",
        "description": f"A logistic head on the {layer} layer embedding of {base['name']} v{base['version']}",
        "input": {},
        "output": {"classes": own},
        "license": embedder.version.learnware.license,
        "tags": ["model-selection", "base-model-head"],
        "artifact": {"format": "base_model_head", "path": HEAD_RECIPE},
    }
    return {
        HEAD_RECIPE: json.dumps(recipe, indent=2, sort_keys=True).encode(),
        HEAD_WEIGHTS: head,
        "learnware.yaml": yaml.safe_dump(manifest, sort_keys=True).encode(),
    }


def scratch_package_files(
    *,
    model: Any,
    modality: str,
    classes: list[str],
    image_shape: tuple[int, int, int] | None,
    evaluation: dict[str, Any],
) -> dict[str, bytes]:
    """The from-scratch winner's package: ``model`` (the evaluate stage's baseline fitted on every
    row, class codes into ``classes``) as ``specs.scratch_linear`` data, and its manifest."""
    modality = str(modality)
    own = [classes[int(c)] for c in model.classes_]
    files = scratch_files(model, own, image_shape=image_shape, evaluation=evaluation)
    manifest = {
        "name": f"from-scratch-{modality}-classifier",
        "kind": "model",
        "modality": modality,
        "task": "classification",
        "description": "TF-IDF + logistic regression from scratch"
        if modality == "text"
        else "logistic regression on downscaled pixels from scratch",
        "input": {},
        "output": {"classes": own},
        "tags": ["model-selection", "from-scratch"],
        "artifact": {"format": "scratch_linear", "path": SCRATCH_JSON},
    }
    return {**files, "learnware.yaml": yaml.safe_dump(manifest, sort_keys=True).encode()}


def deliver(submission: Submission, files: dict[str, bytes]) -> str:
    """Store the package with the submission; its sha256."""
    content = deterministic_zip(files)
    submission_package_save(submission_id=submission.id, content=content, filename="package.zip")
    return sha256_hex(content)


def delivered_message(embedder: SandboxLayerEmbedder, layer: int | str) -> str:
    version = embedder.version
    where = "layer-mean" if layer == "mean" else f"layer-{layer}"
    return DELIVERED.format(base=f"{version.learnware.name} v{version.number}", layer=where)
