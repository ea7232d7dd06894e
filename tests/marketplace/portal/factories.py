"""Rows for portal tests: a table feature space and learnwares with a published version, a spec,
a fingerprint and a package file, written straight to the database (no worker)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
from django.core.files.base import ContentFile

from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus, Visibility
from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion, Specification
from specs import RFFSketch, RKMESpecification, arrays_to_bytes, rkme_to_json
from specs import self_term as spec_self_term

COLUMNS = ["a", "b", "c"]
_counter = itertools.count(1)


def make_space(key: str = "table-portal", d: int = 3) -> FeatureSpace:
    space, _ = FeatureSpace.objects.get_or_create(
        key=key,
        defaults={
            "kind": Modality.TABLE,
            "dim": d,
            "gamma": 1.0 / (2 * d),
            "sketch_dim": 64,
            "sketch_seed": 3,
            "schema": {"columns": COLUMNS[:d]},
        },
    )
    return space


def make_learnware(
    owner: Any,
    *,
    name: str | None = None,
    visibility: str = Visibility.PUBLIC,
    status: str = VersionStatus.PUBLISHED,
    description: str = "A **small** model.",
    tags: list[str] | None = None,
    license: str = "MIT",
    shift: float = 0.0,
    fingerprint: np.ndarray | None = None,
    reuse_count: int = 0,
    index: bool = True,
) -> LearnwareVersion:
    """A learnware with one version in ``status``; published ones get a spec fitted on shifted Gaussian
    rows."""
    n = next(_counter)
    name = name or f"portal-lw-{n}"
    space = make_space()
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
        tags=tags or ["demo"],
        visibility=visibility,
        reuse_count=reuse_count,
    )
    version = LearnwareVersion(
        learnware=lw,
        number=1,
        artifact_sha256=f"{n:064x}",
        artifact_size=11,
        status=status,
        manifest={"input": {"columns": COLUMNS}, "output": {"classes": ["x", "y"]}},
        checks=[{"check": "manifest", "ok": True, "message": "valid"}],
    )
    version.package.save("package.zip", ContentFile(b"zip-content"), save=False)
    version.save()
    if status == VersionStatus.PUBLISHED:
        from django.utils import timezone

        LearnwareVersion.objects.filter(id=version.id).update(published_at=timezone.now())
        X = np.random.default_rng(n).normal(loc=shift, size=(40, space.dim))
        spec = RKMESpecification(8, space.gamma, random_state=0).fit(X)
        sketch = RFFSketch(
            space.dim, space.gamma, space.sketch_dim, random_state=space.sketch_seed
        ).transform(spec.Z_, spec.beta_)
        fp = fingerprint if fingerprint is not None else np.random.default_rng(n).normal(size=(16, 2))
        specification = Specification.objects.create(
            version=version,
            feature_space=space,
            rkme=json.loads(rkme_to_json(spec)),
            k=8,
            self_term=spec_self_term(spec.Z_, spec.beta_, space.gamma),
            sketch=sketch.astype(np.float32).tobytes(),
            probe_fingerprint=arrays_to_bytes(
                {"probe_seed": 0}, {"outputs": np.asarray(fp, dtype=np.float32)}
            ),
        )
        if index:
            from marketplace.search.services import index_add

            index_add(specification=specification)
    version.refresh_from_db()
    return version


def csv_rows(rows: int = 30, *, shift: float = 0.0, label: bool = False, seed: int = 0) -> bytes:
    X = np.random.default_rng(seed).normal(loc=shift, size=(rows, len(COLUMNS)))
    header = ",".join(COLUMNS + (["label"] if label else []))
    lines = [
        ",".join(f"{v:.5f}" for v in row) + (f",{'x' if i % 2 else 'y'}" if label else "")
        for i, row in enumerate(X)
    ]
    return (header + "\n" + "\n".join(lines) + "\n").encode()
