"""Rows for search tests: feature spaces, learnwares with synthetic RKMEs, indexed on demand."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus, Visibility
from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion, Specification
from marketplace.search.services import index_add
from specs import RFFSketch, RKMESpecification, rkme_to_json
from specs import self_term as spec_self_term

_counter = itertools.count(1)


def make_space(key: str = "tab4", d: int = 4, D: int = 256, gamma: float | None = None) -> FeatureSpace:
    return FeatureSpace.objects.create(
        key=key, kind=Modality.TABLE, dim=d, gamma=gamma or 1.0 / (2 * d), sketch_dim=D, sketch_seed=7
    )


def rkme_doc(Z: np.ndarray, beta: np.ndarray, gamma: float, n_samples: int | None = None) -> dict[str, Any]:
    import json

    return json.loads(rkme_to_json(RKMESpecification.from_arrays(Z, beta, gamma, n_samples=n_samples)))


def publish(
    space: FeatureSpace,
    owner: Any,
    Z: np.ndarray,
    beta: np.ndarray,
    *,
    name: str | None = None,
    visibility: str = Visibility.PUBLIC,
    tags: list[str] | None = None,
    license: str = "MIT",
    card: np.ndarray | None = None,
    index: bool = True,
    description: str = "",
    unit_rms: np.ndarray | None = None,
    n_samples: int | None = None,
) -> LearnwareVersion:
    """A learnware with one published version whose spec is (Z, beta); indexed unless ``index=False``;
    ``unit_rms`` is stored beside the RKME as publishing stores a table sample's."""
    n = next(_counter)
    name = name or f"learnware-{n}"
    lw = Learnware.objects.create(
        owner=owner,
        name=name,
        slug=f"{name}-{n}",
        description=description,
        kind=Kind.MODEL,
        modality=Modality.TABLE,
        task=Task.CLASSIFICATION,
        feature_space=space,
        license=license,
        tags=tags or [],
        visibility=visibility,
    )
    version = LearnwareVersion.objects.create(
        learnware=lw, number=1, artifact_sha256=f"{n:064x}", status=VersionStatus.PUBLISHED
    )
    sketch = RFFSketch(space.dim, space.gamma, space.sketch_dim, random_state=space.sketch_seed).transform(
        Z, beta
    )
    spec = Specification.objects.create(
        version=version,
        feature_space=space,
        rkme=rkme_doc(Z, beta, space.gamma, n_samples)
        | ({"unit_rms": np.asarray(unit_rms).tolist()} if unit_rms is not None else {}),
        k=Z.shape[0],
        self_term=spec_self_term(Z, beta, space.gamma),
        sketch=sketch.astype(np.float32).tobytes(),
        card_embedding=None if card is None else np.asarray(card, dtype=np.float32).tobytes(),
    )
    if index:
        index_add(specification=spec)
    return version


def cluster_spec(
    rng: np.random.Generator,
    centers: np.ndarray,
    K: int,
    weights: np.ndarray | None = None,
    spread: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """K points drawn from a Gaussian mixture over ``centers`` (uniform beta): a synthetic reduced set."""
    weights = np.full(len(centers), 1 / len(centers)) if weights is None else weights
    comp = rng.choice(len(centers), size=K, p=weights)
    return centers[comp] + spread * rng.standard_normal((K, centers.shape[1])), np.full(K, 1.0 / K)
