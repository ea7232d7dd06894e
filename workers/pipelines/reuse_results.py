"""What each reuse stage stores: one dataclass per stage result, and the ``Stage`` protocol.

A stage's ``run`` returns one of these; the runner stores ``result.to_dict()`` (plus the
stage's input ``key`` and its ``seconds``) under ``submission.results[stage]``. The fields are
the stored JSON's keys in the stored order, so the JSON is what the untyped stages wrote;
stages that read an earlier result get it back with ``from_dict`` (``ReuseContext`` has one
accessor a stage). A stage whose stored result has several shapes has one class a shape
(e.g. ``RankSkipped`` / ``RankScored``): a key is either always there or never.

Nested parts that stages read by key are ``TypedDict``s; the rest (explanations, per-method
rows shown to the user) stay plain JSON dicts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NotRequired, Protocol, Self, TypedDict

if TYPE_CHECKING:
    from workers.base import Report
    from workers.pipelines.reuse_context import ReuseContext

Json = dict[str, Any]
Verdict = Literal["better", "no_difference", "worse"]  # ``specs.evaluation.paired_verdict``


# --- nested parts read by later stages ------------------------------------------------------------
class BasePinNote(TypedDict):
    """A text model of a run in a published base's space: the base version it was pinned to when it
    published, against the version the run embeds the user's texts with, and the version whose
    embeddings it was fed (its pin's while published, ``reuse_base_pins``)."""

    version: int | None  # None: published before pins, the version it was trained on is not known
    version_id: int | None
    run_version: int
    run_version_id: int
    differs: bool | None
    embedded_with: NotRequired[int]  # the version whose embeddings it was fed (its pin's, else the run's)
    explanation: str


class VersionCard(TypedDict):
    """A learnware version as the results name it."""

    learnware_id: int
    version_id: int
    version: int
    name: str
    license: str
    sha256: str
    base_pin: NotRequired[BasePinNote]  # text models in a published base's space only


class RankedSingle(VersionCard):
    mmd2: float
    sketch_distance: float
    rank: int
    explanation: str


class MixtureComponent(VersionCard):
    weight: float
    confidence: float  # share of the mixture's MMD² gain (leave-one-out), see specs.mixture_bootstrap


class MixtureSuggestion(TypedDict):
    """A plausible mixture the calibrated test did not confirm, offered with its evidence."""

    components: list[MixtureComponent]
    mmd2: float
    gain: float
    p_value: float
    explanation: str


class Mixture(TypedDict):
    """``identify.mixture``: the calibrated mixture proposal (the last five keys only when there was one)."""

    proposed: bool
    components: list[MixtureComponent]
    explanation: str
    mmd2: NotRequired[float]
    best_single_version_id: NotRequired[int]
    best_single_mmd2: NotRequired[float]
    noise_mmd2: NotRequired[float | None]
    p_value: NotRequired[float | None]  # bootstrap p-value of the MMD² gain; proposed when <= alpha
    alpha: NotRequired[float]
    gain_quantile: NotRequired[float | None]
    suggestion: NotRequired[MixtureSuggestion | None]


class StoredFile(TypedDict):
    """A work file of the run (``ReuseContext.work_save``)."""

    file: str
    sha256: str
    size: int


# --- the stage results ------------------------------------------------------------------------------
@dataclasses.dataclass
class StageResult:
    """Base of the stage results: field order = key order of the stored JSON."""

    stage: ClassVar[str]

    def to_dict(self) -> Json:
        # Not ``dataclasses.asdict``: values are JSON already, and a copy would only cost time.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, stored: Json) -> Self:
        """The result of a stored ``submission.results[stage]`` (``key`` and ``seconds`` are the runner's)."""
        # A field with a default may be absent from results stored before it existed.
        return cls(
            **{
                f.name: stored[f.name]
                for f in dataclasses.fields(cls)
                if f.name in stored
                or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            }
        )


@dataclasses.dataclass
class SpecResult(StageResult):
    stage: ClassVar[str] = "spec"
    feature_space: str
    source: str  # "client" (an uploaded RKME) or "data"
    n_rows: int
    d: int
    K: int
    gamma: float
    self_term: float
    rkme_file: StoredFile
    unit_rms: list[float]
    unit_rms_known: bool
    labelled: Json | None  # n, and classes / counts / single_class or target_mean / target_std
    image_shape: list[int] | None
    columns: Json | None  # a named table's columns against the space's (``reuse_spec._columns_report``)
    imputation: Json | None  # the plan that fills columns the user lacks (``reuse_impute``), or None
    explanation: str
    rows_file: StoredFile | None = None  # the user's rows in the space (<= 1000), for the mixture test
    base_version_id: int | None = None  # a published base's space: the version that embedded the texts


@dataclasses.dataclass
class IdentifyResult(StageResult):
    stage: ClassVar[str] = "identify"
    singles: list[RankedSingle]
    mixture: Mixture
    feature_space: str
    explanation: str


@dataclasses.dataclass
class RankSkipped(StageResult):
    """No labelled sample: the candidates keep the identification order."""

    stage: ClassVar[str] = "rank"
    skipped: Literal[True]
    candidates: list[Json]
    meaning: dict[str, str]
    explanation: str


@dataclasses.dataclass
class RankScored(StageResult):
    stage: ClassVar[str] = "rank"
    skipped: Literal[False]
    classes: list[str]
    candidates: list[Json]  # cards with mmd2, scores, combined and rank, best first
    weights: dict[str, float]
    meaning: dict[str, str]
    explanation: str


@dataclasses.dataclass
class AdapterRankResult(StageResult):
    stage: ClassVar[str] = "rank"
    skipped: Literal[False]
    kind: Literal["adapter"]
    classes: list[str]
    candidates: list[Json]
    weights: dict[str, float]
    meaning: dict[str, str]
    explanation: str


RankResult = RankSkipped | RankScored | AdapterRankResult


def rank_from_dict(stored: Json) -> RankResult:
    if stored["skipped"]:
        return RankSkipped.from_dict(stored)
    return (
        AdapterRankResult.from_dict(stored)
        if stored.get("kind") == "adapter"
        else RankScored.from_dict(stored)
    )


@dataclasses.dataclass
class AssembleResult(StageResult):
    stage: ClassVar[str] = "assemble"
    members: list[Json]  # cards with prior_weight
    classes: list[str] | None
    labels_used: bool
    methods: list[Json]  # one row a method: method, validation, artifact, parameters, or skipped
    chosen: str
    reason: str
    units: list[Json]
    # The label-free choice and its evidence (specs.assembly.label_free.LabelFreeChoice.as_dict)
    label_free: Json | None = None


@dataclasses.dataclass
class AdapterAssembleResult(StageResult):
    stage: ClassVar[str] = "assemble"
    kind: Literal["adapter"]
    members: list[Json]
    negated: list[Json]
    classes: list[str] | None
    split: dict[str, int] | None
    methods: list[Json]
    chosen: str
    reason: str


def assemble_from_dict(stored: Json) -> AssembleResult | AdapterAssembleResult:
    return (
        AdapterAssembleResult.from_dict(stored)
        if stored.get("kind") == "adapter"
        else AssembleResult.from_dict(stored)
    )


class Winner(TypedDict):
    kind: str  # "from_scratch", "best_single" or "assembly"
    method: str
    name: str


@dataclasses.dataclass
class EvaluateUnlabelled(StageResult):
    """No labelled sample: nothing measured, the identification scores only."""

    stage: ClassVar[str] = "evaluate"
    labelled: Literal[False]
    verdict: None
    winner: Winner
    identification: Json
    statement: str


@dataclasses.dataclass
class EvaluateSingleClass(StageResult):
    """Labels of one class: the label-free package measured on them, nothing compared."""

    stage: ClassVar[str] = "evaluate"
    labelled: Literal[True]
    labels_used: Literal[False]
    metric: str
    n_test: int
    n_train: int
    methods: Json
    chosen: str
    chosen_score: float
    winner: Winner
    scores: Json
    verdicts: dict[str, Verdict | None]
    skipped: dict[str, str]
    baselines: Json
    verdict: dict[str, bool]
    statement: str


@dataclasses.dataclass
class EvaluateLabelled(StageResult):
    stage: ClassVar[str] = "evaluate"
    labelled: Literal[True]
    labels_used: Literal[True]
    metric: str
    n_test: int
    n_train: int
    folds: dict[str, int]
    methods: Json
    chosen: str
    chosen_score: float
    winner: Winner
    scores: Json
    verdicts: dict[str, Verdict]
    per_fold: dict[str, list[float]]
    differences: Json
    gains_over_label_free: Json
    skipped: dict[str, str]
    baselines: Json
    verdict: dict[str, bool]
    statement: str
    # The members with the true vs the imputed columns the labelled rows hold (reuse_impute_cost)
    imputation_cost: Json | None = None


@dataclasses.dataclass
class AdapterEvaluateResult(StageResult):
    stage: ClassVar[str] = "evaluate"
    labelled: Literal[True]
    metric: str
    n_test: int
    n_train: int
    methods: Json
    chosen: str
    chosen_score: float
    winner: Winner
    scores: Json
    verdicts: dict[str, Verdict]
    baselines: Json
    verdict: dict[str, bool]
    statement: str


EvaluateResult = EvaluateUnlabelled | EvaluateSingleClass | EvaluateLabelled | AdapterEvaluateResult


@dataclasses.dataclass
class PackageResult(StageResult):
    stage: ClassVar[str] = "package"
    sha256: str
    size: int
    files: list[str]
    license: str
    method: str
    winner: Winner | None
    members: list[Json]  # version_id and package sha256 of each shipped member


@dataclasses.dataclass
class AdapterPackageResult(StageResult):
    stage: ClassVar[str] = "package"
    sha256: str
    size: int
    files: list[str]
    license: str
    method: str
    kind: Literal["adapter", "assembly"]
    members: list[Json]


class Stage(Protocol):
    """One step of the reuse pipeline: ``key`` names its entry in ``submission.results``."""

    @property
    def key(self) -> str: ...

    def run(self, ctx: ReuseContext, report: Report) -> StageResult: ...
