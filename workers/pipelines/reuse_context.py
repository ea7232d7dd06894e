"""What the reuse stages share: the submission, the stored results, and inputs loaded once.

Everything here is recomputed deterministically from the submission's files and the
stored results, so a resumed run rebuilds the same context.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.learnwares.models import FeatureSpace
from marketplace.learnwares.services.adapter_bases import is_base_space
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import TableData, TextData, read_table, read_texts
from marketplace.submissions.image_data import ImageData, read_images
from marketplace.submissions.models import Submission
from specs import RKMESpecification
from specs.columns import Alignment, ColumnError, align, align_complete, apply_column_map
from specs.units import unit_rms
from workers.pipelines.reuse_impute import fill_table
from workers.pipelines.reuse_members import Member, OutputCache
from workers.pipelines.reuse_results import (
    AdapterAssembleResult,
    AssembleResult,
    IdentifyResult,
    RankResult,
    SpecResult,
    StoredFile,
    assemble_from_dict,
    rank_from_dict,
)
from workers.pipelines.reuse_transforms import ImageSpaceTransform, SpaceTransform

if TYPE_CHECKING:
    from specs.assembly import LoRAAdapter
    from workers.pipelines.reuse_base import PublishedBase
    from workers.pipelines.reuse_text import LayerCache

__all__ = ["ImageSpaceTransform", "ReuseContext", "RunCache", "SpaceTransform", "unit_rms"]

DEFAULT_SEED = 0
DEFAULT_HOLDOUT = 0.3
VALIDATION_SHARE = 0.25  # of the rows left after the hold-out
MIN_LABELLED = 12


def mapped_columns(columns: list[str], column_map: Any, field: str) -> list[str]:
    """``columns`` renamed by the requirements' ``column_map``; a bad map is refused by name."""
    try:
        return apply_column_map(columns, column_map)
    except ColumnError as exc:
        raise ValidationFailed(
            f"requirements.column_map: {exc}",
            code=f"submission:user:column-map-{exc.code.split(':')[-1]}",
            details={"requirements.column_map": [str(exc)], "columns": exc.columns},
        ) from exc


def space_alignment(
    names: list[str], space_columns: list[Any], key: str, field: str, schema: dict[str, Any] | None = None
) -> Alignment:
    """How the user's (renamed) columns reach the space's; every space column must be there
    (else the error names the missing ones and suggests renames, never applied)."""
    try:
        return align_complete(names, space_columns, what=f"feature space {key}")
    except ColumnError as exc:
        from marketplace.search.column_suggest import column_suggestions

        a = align(names, space_columns)
        hints = column_suggestions(extra=a.extra, missing=a.missing, schema=schema or {})
        shown = (
            "; suggested column_map: "
            + ", ".join(f"{h['yours']!r}: {h['theirs']!r} ({h['confidence']:.2f})" for h in hints)
            if hints
            else ""
        )
        raise ValidationFailed(
            f"{field}: {exc}{shown}",
            code="submission:user:missing-columns",
            details={field: [str(exc)], "missing": exc.columns, "suggestions": hints},
        ) from exc


@dataclass
class RunCache:
    """What the stages of one run compute once and share (never stored: rebuilt on a resume)."""

    user_spec: RKMESpecification | None = None  # the spec stage's RKME, read back from its work file
    members: dict[int, Member] = field(default_factory=dict)  # version id -> member
    outputs: OutputCache | None = None  # members' outputs on row sets
    adapters: dict[int, LoRAAdapter] = field(default_factory=dict)  # version id -> LoRA factors
    layers: LayerCache | None = None  # hidden states of adapters on texts
    tables: dict[str, TableData] = field(
        default_factory=dict
    )  # "user_table" / "labelled_table" in the space's order
    imputation: dict[str, Any] | None = (
        None  # the spec stage's plan for the columns the user lacks (``reuse_impute``)
    )
    # A published base's space: member version id -> the base version it is fed when not the run's
    # (``reuse_base_pins.member_base``), and base version id -> the labelled texts' rows on it (a member
    # takes the rows of the labelled indices a stage passes, never rows looked up by their bytes).
    member_bases: dict[int, PublishedBase | None] = field(default_factory=dict)
    base_rows: dict[int, np.ndarray] = field(default_factory=dict)


class ReuseContext:
    """Inputs of one submission's run, loaded lazily and at most once.

    ``results`` holds the stored JSON of the finished stages (what ``submission.results`` holds);
    the ``*_result`` properties give them back typed."""

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.results: dict[str, dict[str, Any]] = {}
        self.cache = RunCache()

    # --- earlier stages' results, typed ---
    @property
    def spec_result(self) -> SpecResult:
        return SpecResult.from_dict(self.results["spec"])

    @property
    def identify_result(self) -> IdentifyResult:
        return IdentifyResult.from_dict(self.results["identify"])

    @property
    def rank_result(self) -> RankResult:
        return rank_from_dict(self.results["rank"])

    @property
    def assemble_result(self) -> AssembleResult | AdapterAssembleResult:
        return assemble_from_dict(self.results["assemble"])

    def stored_key(self, stage: str) -> str:
        """The input key the runner stored with a stage's result (sha256 of its inputs)."""
        return str(self.results[stage]["key"])

    @property
    def requirements(self) -> dict[str, Any]:
        return self.submission.requirements or {}

    @property
    def seed(self) -> int:
        return int(self.requirements.get("seed", DEFAULT_SEED))

    def _read(self, field: Any) -> bytes:
        with field.open("rb") as fh:
            return fh.read()

    @cached_property
    def data_bytes(self) -> bytes:
        if not self.submission.data_file:
            raise ValidationFailed(
                "data: the submission's data were deleted", code="submission:user:data-deleted"
            )
        return self._read(self.submission.data_file)

    @cached_property
    def raw_user_table(self) -> TableData:
        """The data file's rows and columns as the user gave them (any order, extra columns)."""
        return read_table(self.data_bytes, self.submission.data_format, field="data")

    @property
    def user_table(self) -> TableData:
        """The user's rows in the space's column order (matched by name), once the space is known."""
        return self._aligned("user_table", self.raw_user_table, "data")

    def user_columns(self, table: TableData, field: str) -> list[str] | None:
        """``table``'s column names after the requirements' ``column_map``; None when unnamed."""
        return (
            None
            if table.columns is None
            else mapped_columns(table.columns, self.requirements.get("column_map"), field)
        )

    def _aligned(self, name: str, table: TableData, field: str) -> TableData:
        if name in self.cache.tables:
            return self.cache.tables[name]
        if "space" not in self.__dict__ and "spec" not in self.results:
            return table  # the spec stage has not resolved the space yet
        columns = (self.space.schema or {}).get("columns") if self.space.kind == Modality.TABLE else None
        names = self.user_columns(table, field)
        if names is None or not columns:
            self.cache.tables[name] = table
            return table
        plan = self.imputation
        if plan:  # the space's columns the user lacks are filled as the plan says (reuse_impute)
            X, target, truth = fill_table(names, columns, table.X, plan, field, seed=self.seed)
            if truth is not None:
                self.cache.tables[f"{name}:truth"] = TableData(X=truth, columns=target, y=table.y)
        else:
            alignment = space_alignment(names, columns, self.space.key, field, self.space.schema)
            X, target = alignment.apply(table.X), alignment.target
        aligned = self.cache.tables[name] = TableData(X=X, columns=target, y=table.y)
        return aligned

    @property
    def labelled_truth(self) -> TableData | None:
        """Labelled rows with the true values of the imputed columns they hold (``fill_table``)."""
        return self.cache.tables.get("labelled_table:truth") if self.labelled_table is not None else None

    @property
    def imputation(self) -> dict[str, Any] | None:
        """The plan filling the space's columns the user lacks (``reuse_impute``), if any."""
        if self.cache.imputation is not None:
            return self.cache.imputation
        return self.spec_result.imputation if "spec" in self.results else None

    def imputation_planned(self, plan: dict[str, Any]) -> None:
        self.cache.imputation = plan

    def space_resolved(self, space: FeatureSpace) -> None:
        """Set by the spec stage: from here on tables are read in ``space``'s column order."""
        self.__dict__["space"] = space

    @property
    def is_text(self) -> bool:
        return self.submission.data_format == DataFormat.JSONL

    @property
    def adapter_mode(self) -> bool:
        """The user asked for LoRA adapters (text space): rank and assemble adapters, not models."""
        return self.requirements.get("kind") == "adapter"

    @property
    def is_image(self) -> bool:
        return self.submission.modality == Modality.IMAGE

    @cached_property
    def user_images(self) -> ImageData:
        return read_images(self.data_bytes, self.submission.data_format, field="data")

    @cached_property
    def labelled_images(self) -> ImageData | None:
        """The labelled images, checked to have the data's size and channels (models take one shape)."""
        if not self.submission.has_labels:
            return None
        images = read_images(
            self._read(self.submission.labelled_file),
            self.submission.labelled_format,
            field="labelled",
            label_column=self.requirements.get("label_column", "label"),
            labelled=True,
        )
        self._check_count(len(images.names))
        if self.submission.data_format != DataFormat.RKME and images.shape != self.user_images.shape:
            shown = "x".join(map(str, images.shape)), "x".join(map(str, self.user_images.shape))
            raise ValidationFailed(
                f"labelled: images are {shown[0]} (C x H x W), the data's {shown[1]}: send both with "
                "one size and colour mode",
                code="submission:user:wrong-image-size",
                details={"labelled": ["image shape differs from the data's"]},
            )
        return images

    @cached_property
    def user_texts(self) -> TextData:
        return read_texts(self.data_bytes, field="data")

    @cached_property
    def labelled_texts(self) -> TextData | None:
        if not self.submission.has_labels:
            return None
        if self.submission.labelled_format != DataFormat.JSONL:
            raise ValidationFailed(
                "labelled: a text submission's labelled sample must be JSONL with 'text' and 'label'",
                code="submission:user:bad-format",
            )
        texts = read_texts(
            self._read(self.submission.labelled_file),
            field="labelled",
            label_key=self.requirements.get("label_column", "label"),
            labelled=True,
        )
        self._check_count(len(texts.texts))
        return texts

    def _check_count(self, n: int) -> None:
        if n < MIN_LABELLED:
            raise ValidationFailed(
                f"labelled: {n} rows are too few (at least {MIN_LABELLED})",
                code="submission:user:too-few-labels",
            )

    @property
    def labelled_table(self) -> TableData | None:
        if not self.submission.has_labels:
            return None
        if (self.is_image or self.is_text) and "labelled_table" in self.cache.tables:
            return self.cache.tables["labelled_table"]  # embedded once a run (base_encode is a sandbox call)
        if self.is_image:
            # Image rows are the pixels, flattened in (C, H, W) order; ``transform`` encodes them.
            images = self.labelled_images
            assert images is not None
            pixels = images.images.reshape(images.images.shape[0], -1).astype(np.float64)
            table = self.cache.tables["labelled_table"] = TableData(X=pixels, columns=None, y=images.y)
            return table
        if self.is_text:
            # Text models are heads on the text space: their rows are the MiniLM embeddings, or in a published
            # base's space the base's (the spec stage's version, in the sandbox; a head pinned to another
            # version is fed that version's rows by OutputCache, reuse_base_pins.member_inputs); adapters'
            # stages embed the texts themselves (reuse_adapters): labels only.
            from marketplace.learnwares.encoding import encode_texts
            from workers.pipelines.reuse_base import base_encode

            texts = self.labelled_texts
            assert texts is not None
            if self.base is None:
                X = encode_texts(texts.texts).astype(np.float64)
            elif self.adapter_mode:
                X = np.zeros((len(texts.texts), 0))
            else:
                X = base_encode(self.base, self.space, list(texts.texts))
            table = self.cache.tables["labelled_table"] = TableData(X=X, columns=None, y=texts.y)
            return table
        return self._aligned("labelled_table", self.raw_labelled_table, "labelled")

    @cached_property
    def raw_labelled_table(self) -> TableData:
        raw = self._read(self.submission.labelled_file)
        table = read_table(
            raw,
            self.submission.labelled_format,
            field="labelled",
            label_column=self.requirements.get("label_column", "label"),
            labelled=True,
        )
        self._check_count(table.X.shape[0])
        return table

    @cached_property
    def space(self) -> FeatureSpace:
        key = self.spec_result.feature_space
        return FeatureSpace.objects.get(key=key)

    @cached_property
    def base(self) -> PublishedBase | None:
        """The space's published base at the version the spec stage embedded with (None: the MiniLM's or
        a table/image space); the spec stage sets it (``base_resolved``), later stages read its choice."""
        if not (self.is_text and is_base_space(self.space)):
            return None
        from workers.pipelines.reuse_base import published_base

        return published_base(self.space, self.submission.owner, self.spec_result.base_version_id)

    def base_resolved(self, base: PublishedBase | None) -> None:
        self.__dict__["base"] = base

    @cached_property
    def transform(self) -> SpaceTransform | ImageSpaceTransform:
        if self.space.kind == Modality.IMAGE:
            return ImageSpaceTransform(self.spec_result.image_shape, self.space.schema or {}, self.space.dim)
        return SpaceTransform(np.asarray(self.spec_result.unit_rms), self.space.standardization or {})

    @property
    def user_rms(self) -> np.ndarray | None:
        """The per-column RMS of the user's rows when the space is unit-free and it is known
        (an uploaded RKME without a labelled sample or ``unit_rms`` does not tell it)."""
        t = self.transform
        if not isinstance(t, SpaceTransform) or not t.unit_free or not self.spec_result.unit_rms_known:
            return None
        return t.rms

    @cached_property
    def splits(self) -> dict[str, np.ndarray]:
        """Seeded fit / validation / test row indices of the labelled sample."""
        table = self.labelled_table
        assert table is not None
        n = table.X.shape[0]
        perm = np.random.default_rng(self.seed).permutation(n)
        n_test = max(3, round(float(self.requirements.get("holdout_fraction", DEFAULT_HOLDOUT)) * n))
        rest = perm[n_test:]
        n_val = max(2, round(VALIDATION_SHARE * rest.shape[0]))
        return {"test": np.sort(perm[:n_test]), "val": np.sort(rest[:n_val]), "fit": np.sort(rest[n_val:])}

    # --- work files: content of a stage, stored privately under the submission's prefix ---
    def work_name(self, name: str) -> str:
        return f"submissions/{self.submission.owner_id}/{self.submission.id}/work/{name}"

    def work_save(self, name: str, content: bytes) -> StoredFile:
        """Store ``content`` as work file ``name`` (skipped if the same bytes are there)."""
        storage = storages["default"]
        path = self.work_name(name)
        sha = hashlib.sha256(content).hexdigest()
        if storage.exists(path):
            with storage.open(path, "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() == sha:
                    return {"file": name, "sha256": sha, "size": len(content)}
            storage.delete(path)
        storage.save(path, ContentFile(content))
        return {"file": name, "sha256": sha, "size": len(content)}

    def work_load(self, name: str) -> bytes:
        with storages["default"].open(self.work_name(name), "rb") as fh:
            return fh.read()
