"""The publish steps of a base model after its sandbox probe passed (``kind: base_model``).

A base model defines an encoder, not a data distribution: it has no feature space and no RKME, so
the spec and fingerprint steps record that and register its encoder's facts instead
(``services.base_model_publish``); the version is then published like any other (listed from its
rows; the RKME search indexes hold nothing of it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from marketplace.learnwares import services
from marketplace.learnwares.models import LearnwareVersion
from marketplace.learnwares.packages import Package

Report = Callable[..., None]
TOTAL_STEPS = 5  # publish.STEPS: validate, sandbox, spec, fingerprints, index


def base_model_facts(package: Package, outputs: np.ndarray) -> dict[str, Any]:
    """What the card shows, read as data after the sandbox checked the folder: the config's
    ``model_type`` and layer count (DistilBERT calls it ``n_layers``), the parameter count from the
    safetensors header, the width from the probe embeddings, the declared pooling."""
    config = json.loads(package.artifact["config.json"])
    weights = package.artifact["model.safetensors"]
    (size,) = np.frombuffer(weights[:8], dtype="<u8")
    header = json.loads(weights[8 : 8 + int(size)])
    header.pop("__metadata__", None)
    return {
        "model_type": str(config.get("model_type", "")),
        "architectures": list(config.get("architectures") or []),
        "num_layers": int(config.get("num_hidden_layers", config.get("n_layers", 0))),
        "hidden_size": int(outputs.shape[1]),
        "parameters": sum(math.prod(entry["shape"]) for entry in header.values()),
        "pooling": package.manifest["pooling"],
    }


def publish_base_model(
    *, version: LearnwareVersion, package: Package, outputs: np.ndarray, report: Report
) -> str:
    """Record the checks, register the encoder, publish; returns the version's new status."""
    facts = base_model_facts(package, outputs)
    services.version_check(
        version=version,
        check="sandbox",
        ok=True,
        message=f"{facts['model_type']} loaded without remote code: {facts['num_layers']} layers, "
        f"{facts['hidden_size']}-d, {facts['parameters']:,} parameters; probe embeddings "
        f"{list(outputs.shape)} with {facts['pooling']} pooling",
    )
    report("spec", 2, TOTAL_STEPS, "a base model has no RKME")
    services.version_check(
        version=version, check="spec", ok=True, message="none: a base model defines an encoder, not data"
    )
    report("fingerprints", 3, TOTAL_STEPS, "registering the encoder")
    row = services.base_model_publish(version=version, facts=facts)
    services.version_check(version=version, check="fingerprints", ok=True, message=f"registered as {row.key}")
    report("index", 4, TOTAL_STEPS, "publishing")
    return services.version_complete(version=version)
