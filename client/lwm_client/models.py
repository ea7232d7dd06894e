"""Typed results: one dataclass per thing the server returns (unknown fields kept in ``raw``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TERMINAL_JOB_STATES = ("succeeded", "failed", "rejected", "cancelled")


def build(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**known fields of data, raw=data)``; missing optional fields take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names and k != "raw"}, raw=data)  # type: ignore[call-arg]


@dataclass
class FeatureSpace:
    key: str
    kind: str
    dim: int
    gamma: float
    standardization: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] = field(default_factory=dict)
    encoder_id: str = ""
    sketch_seed: int = 0
    sketch_dim: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Learnware:
    id: int
    name: str
    slug: str = ""
    owner: str = ""
    description: str = ""
    kind: str = ""
    modality: str = ""
    task: str = ""
    license: str = ""
    tags: list[str] = field(default_factory=list)
    visibility: str = ""
    feature_space: str | None = None
    base_model: str | None = None
    reuse_count: int = 0
    download_count: int = 0
    latest_version: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Version:
    number: int
    status: str
    artifact_sha256: str = ""
    artifact_size: int = 0
    artifact_format: str = ""
    label: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    checks: Any = None
    rejection_reasons: Any = None
    job: str | None = None
    # A text model on a published base: the base version it runs on (empty: none, or published before pins).
    base_pin: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Job:
    id: str
    status: str
    stage: str = ""
    progress: int = 0
    message: str = ""
    log: Any = None
    error: Any = None
    result: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


@dataclass
class Upload:
    """What a publish call returns: the learnware, its new version and (after waiting) its final state."""

    learnware: int
    version: int
    job: str
    status: str
    final: Version | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class SearchHit:
    learnware_id: int
    version_id: int
    version: int
    name: str
    slug: str = ""
    owner: str = ""
    kind: str = ""
    modality: str = ""
    task: str = ""
    license: str = ""
    tags: list[str] = field(default_factory=list)
    explanation: str = ""
    similarity: float | None = None
    text_rank: float | None = None
    mmd2: float | None = None
    sketch_distance: float | None = None
    mixture_weight: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Mixture:
    proposed: bool
    mmd2: float
    best_single_mmd2: float
    best_single_version_id: int
    components: list[dict[str, Any]] = field(default_factory=list)
    noise_mmd2: float | None = None
    p_value: float | None = None  # bootstrap p-value of the MMD² gain; proposed when <= alpha
    alpha: float | None = None
    suggestion: dict[str, Any] | None = None  # plausible but not significant mixture, with its evidence
    explanation: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class SearchResult:
    results: list[SearchHit]
    generation: int = 0
    feature_space: str | None = None
    mixture: Mixture | None = None
    # Only when the rows themselves were sent (Client.search_by_file): how the file's columns met the
    # space's (matched / missing / extra), and learnwares of other spaces ranked on the shared columns
    # (each: compared, missing, coverage, mmd2, noise, score — marketplace/search/cross_space.py).
    columns: dict[str, Any] | None = None
    cross_space: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        mixture = data.get("mixture")
        return cls(
            results=[build(SearchHit, r) for r in data.get("results", [])],
            generation=data.get("generation", 0),
            feature_space=data.get("feature_space"),
            mixture=build(Mixture, mixture) if mixture else None,
            columns=data.get("columns"),
            cross_space=list(data.get("cross_space") or []),
            raw=data,
        )


@dataclass
class Submission:
    id: str
    status: str
    stage: str = ""
    progress: int = 0
    message: str = ""
    error: Any = None
    job: str | None = None
    name: str = ""
    modality: str = ""
    task: str = ""
    feature_space: str | None = None
    requirements: dict[str, Any] = field(default_factory=dict)
    has_labels: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    package_url: str | None = None
    package_sha256: str = ""
    package_size: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


@dataclass
class Download:
    path: Path
    sha256: str
    size: int
