"""The model-selection deliverable: a reference to the chosen base model + the logistic head on it.

Built when the head is not worse than from scratch (``specs.base_model_head`` is the format and the
runtime the client shares). The head is the evaluate stage's logistic regression refitted on every
labelled row of the same features (the chosen layer of the sandbox's layer embeddings), exported as
``head.safetensors``; the base model is *referenced* (learnware id, version, package sha256, weights
sha256), never copied: the client downloads it from the market and checks it. The market's
registered MiniLM has no package: its reference names its key and the client uses its local copy.

When the head is worse, the from-scratch winner (TF-IDF + logistic regression on texts, downscaled
pixels for images) is not packaged: the market's from-scratch packaging exports a scaler + estimator
to TorchScript over numeric rows, and neither a TF-IDF vocabulary nor the pixel downscale fits that
format; the result says so (:data:`NO_PACKAGE_WORSE`).
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
from workers.pipelines.model_selection_embed import SandboxLayerEmbedder
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models
from workers.pipelines.reuse_shared import deterministic_zip

NO_PACKAGE_WORSE = (
    "no package: the head is worse than from scratch, and the from-scratch winner (TF-IDF or "
    "downscaled pixels + logistic regression) has no package format (the market's from-scratch "
    "packages are TorchScript over numeric rows)"
)
DELIVERED = "delivered: the package references {base} and holds the logistic head on its {layer} embedding"


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


def deliver(submission: Submission, files: dict[str, bytes]) -> str:
    """Store the package with the submission; its sha256."""
    content = deterministic_zip(files)
    submission_package_save(submission_id=submission.id, content=content, filename="package.zip")
    return sha256_hex(content)


def delivered_message(embedder: SandboxLayerEmbedder, layer: int | str) -> str:
    version = embedder.version
    where = "layer-mean" if layer == "mean" else f"layer-{layer}"
    return DELIVERED.format(base=f"{version.learnware.name} v{version.number}", layer=where)
