"""Learnware versions as assembly members: their artifact, classes, RKME, and outputs on rows.

Outputs are computed by the publishing sandbox (``workers.sandbox.runner.run_model``), never
in the worker process, and cached per (artifact sha256, rows sha256) for the run.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from marketplace.core.exceptions import ApplicationError, TransientError, ValidationFailed
from marketplace.learnwares.models import LearnwareVersion
from marketplace.search.store import rkme_arrays
from specs.columns import align_complete, column_names
from specs.exceptions import SpecError
from specs.images import rows_as_images
from specs.impute import member_fill, member_rows
from specs.recipe import in_task_classes, probabilities
from specs.units import UnitsOutOfRange, check_rms, member_scale, rows_in_units
from workers.sandbox import SandboxError, SandboxUnavailable, run_model

# torch.export (.pt2) is never loaded: its loader unpickles with full pickle (docs/security.md).
MODEL_SUFFIXES = {".pt": "torchscript", ".onnx": "onnx"}
ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"


@dataclass(frozen=True)
class Member:
    """One learnware version taking part in a submission."""

    version_id: int
    learnware_id: int
    number: int
    name: str
    license: str
    sha256: str
    artifact_format: str
    artifact_name: str
    classes: list[str] | None
    Z: np.ndarray
    beta: np.ndarray
    input_shape: list[int] | None = None  # [C, H, W] of an image learnware: it takes (n, C, H, W)
    unit_rms: np.ndarray | None = None  # per-column RMS of its sample (the units its model takes), if known
    # Its model's column order as indices into the space's (None: the space's own order); see specs.columns.
    input_order: tuple[int, ...] | None = None

    def card(self) -> dict[str, Any]:
        return {
            "learnware_id": self.learnware_id,
            "version_id": self.version_id,
            "version": self.number,
            "name": self.name,
            "license": self.license,
            "sha256": self.sha256,
        }


def _manifest_classes(manifest: dict[str, Any]) -> list[str] | None:
    output = manifest.get("output") or {}
    classes = output.get("classes") if isinstance(output, dict) else None
    if classes is None:
        classes = manifest.get("labels")
    if not classes:
        return None
    return [str(c["name"]) if isinstance(c, dict) else str(c) for c in classes]


def _manifest_shape(manifest: dict[str, Any]) -> list[int] | None:
    shape = (manifest.get("input") or {}).get("shape") if isinstance(manifest.get("input"), dict) else None
    return [int(v) for v in shape] if shape else None


def package_files(version: LearnwareVersion) -> dict[str, bytes]:
    """Files of a version's package zip (name -> bytes)."""
    with version.package.open("rb") as fh:
        raw = fh.read()
    if hashlib.sha256(raw).hexdigest() != version.artifact_sha256:
        raise ApplicationError(
            f"learnware version {version.id}: stored package does not match its sha256",
            code="submission:app:artifact-corrupt",
            http_status=500,
        )
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}


def model_artifact(files: dict[str, bytes], manifest: dict[str, Any]) -> tuple[str, str]:
    """(file name, artifact kind) of the package's model file."""
    named = manifest.get("artifact")
    if isinstance(named, dict):
        named = named.get("path") or named.get("file")
    candidates = [named] if isinstance(named, str) and named in files else sorted(files)
    for name in candidates:
        for suffix, kind in MODEL_SUFFIXES.items():
            if name.endswith(suffix):
                return name, kind
    raise ApplicationError(
        f"no TorchScript (.pt) or ONNX (.onnx) model in the package; .pt2 archives are not run "
        f"(files: {sorted(files)[:10]})",
        code="submission:app:no-artifact",
        http_status=500,
    )


def member_load(version: LearnwareVersion) -> Member:
    """Member of a published version (its manifest, artifact name and RKME)."""
    manifest = version.manifest or {}
    if not manifest and version.package:
        manifest = yaml.safe_load(package_files(version).get("learnware.yaml", b"{}")) or {}
    files = package_files(version)
    lw = version.learnware
    if lw.kind == "adapter":
        name, kind = ADAPTER_WEIGHTS, "peft_lora"  # with adapter_config.json: see OutputCache.files
    else:
        name, kind = model_artifact(files, manifest)
    rkme = version.specification.rkme
    Z, beta = rkme_arrays(rkme)
    return Member(
        version.id,
        lw.id,
        version.number,
        lw.name,
        lw.license,
        version.artifact_sha256,
        kind,
        name,
        _manifest_classes(manifest),
        Z,
        beta,
        _manifest_shape(manifest),
        _stored_rms(rkme, Z.shape[1]),
        _input_order(version.specification.feature_space.schema or {}, manifest),
    )


def _input_order(schema: dict[str, Any], manifest: dict[str, Any]) -> tuple[int, ...] | None:
    """Where the model's columns (its manifest's order) sit in the space's rows; None when they agree."""
    space, own = schema.get("columns"), (manifest.get("input") or {}).get("columns")
    if not space or not own:
        return None
    order = align_complete(column_names(space), own)
    return None if order.is_identity else tuple(int(i) for i in order.index)


def _stored_rms(rkme: dict[str, Any], d: int) -> np.ndarray | None:
    """The ``unit_rms`` publishing stored beside the RKME (absent for learnwares published before it)."""
    values = rkme.get("unit_rms") if isinstance(rkme, dict) else None
    if values is None:
        return None
    try:
        return check_rms(values, d)
    except SpecError:
        return None


def members_load(version_ids: list[int]) -> list[Member]:
    """Members in the order of ``version_ids``."""
    rows = LearnwareVersion.objects.select_related("learnware", "specification__feature_space").in_bulk(
        version_ids
    )
    return [member_load(rows[v]) for v in version_ids]


class OutputCache:
    """Raw outputs of members on row sets, computed once per run in the sandbox.

    ``image_shape`` is the submission's [C, H, W] when it holds images: rows are then pixels,
    handed to each image learnware as (n, C, H, W), the layout publishing probed it with.
    ``unit_factor`` (d,) is how many of the user's units one market unit is, per column
    (``specs.units.mixture_unit_factor``): a member whose units are known gets the rows
    divided by it, as the package's predictor does; None leaves every row as it is.
    ``imputation`` is the run's plan for columns the user lacks (``reuse_impute``): the rows come
    filled by it, and each member's RKME-filled columns are refilled from its own RKME
    (``specs.impute.member_rows``, as the package's predictor does with the recipe's fills).
    ``rebase`` (member version id, rows X, their labelled indices) -> the rows it is fed: in a published
    base's space, a text head pinned to another base version than the run's gets the same labelled texts
    embedded by its own version (``reuse_base_pins.member_inputs``); None: every member gets X as given.
    ``columns``: the space's column names, to name the columns of rows that float32 cannot hold in a
    member's units (``submission:user:out-of-range``, ``specs.units.member_scale``).
    """

    def __init__(
        self,
        image_shape: list[int] | tuple[int, ...] | None = None,
        unit_factor: np.ndarray | None = None,
        imputation: dict[str, Any] | None = None,
        rebase: Callable[[int, np.ndarray, np.ndarray | None], np.ndarray] | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.rebase = rebase
        self.columns = list(columns) if columns else None
        self.image_shape = [int(v) for v in image_shape] if image_shape else None
        self.unit_factor = None if unit_factor is None else np.asarray(unit_factor, dtype=np.float64)
        self.imputation = imputation or None
        self._fills: dict[int, dict[str, Any] | None] = {}
        self._files: dict[int, dict[str, bytes]] = {}
        self._outputs: dict[tuple[int, str], np.ndarray] = {}

    def files(self, member: Member) -> dict[str, bytes]:
        """The member's package files (name -> bytes)."""
        if member.version_id not in self._files:
            self._files[member.version_id] = package_files(LearnwareVersion.objects.get(id=member.version_id))
        return self._files[member.version_id]

    def artifact(self, member: Member) -> bytes:
        return self.files(member)[member.artifact_name]

    def scale(self, member: Member) -> np.ndarray | None:
        """Factors (d,) from the user's units to the member's, or None when either is unknown."""
        if self.unit_factor is None or member.unit_rms is None or member.input_shape is not None:
            return None
        try:
            return member_scale(self.unit_factor)
        except UnitsOutOfRange as exc:
            raise self._out_of_range(member, exc) from None

    def _out_of_range(self, member: Member, exc: UnitsOutOfRange) -> ValidationFailed:
        names = [self.columns[c] if self.columns else f"column {c}" for c in exc.columns[:5]]
        return ValidationFailed(
            f"your rows cannot be put into the units of learnware {member.name} v{member.number} in columns "
            f"{names}{' ...' if len(exc.columns) > 5 else ''}: {exc}; rescale those columns",
            code="submission:user:out-of-range",
            details={"columns": names},
        )

    def fill(self, member: Member) -> dict[str, Any] | None:
        """The member's own fill of the plan's missing columns (``specs.impute.member_fill``), with the
        columns it takes from the labelled rows' ridge as the plan chose for it (``own_rkme``); None
        without a plan, for an image member, or when its RKME cannot fill (it keeps the plan's)."""
        if self.imputation is None or member.input_shape is not None:
            return None
        if member.version_id not in self._fills:
            chosen = [
                c for c in self.imputation.get("own_rkme") or [] if c["version_id"] == member.version_id
            ]
            ridge = chosen[0].get("ridge") if chosen else None  # None: the plan's choice (older plans)
            own = member_fill(member.Z, member.beta, member.unit_rms, self.imputation, ridge)
            self._fills[member.version_id] = own
        return self._fills[member.version_id]

    def member_rows(self, member: Member, X: np.ndarray, keep: tuple[int, ...] = ()) -> np.ndarray:
        """Rows X filled by the plan -> the rows this member sees (its own RKME's fill); ``keep``:
        columns holding true values (``reuse_impute_cost``), never refilled."""
        fill = self.fill(member)
        if fill is None or self.imputation is None:
            return X
        return member_rows(X, self.imputation, fill, self.scale(member), keep=keep)

    def inputs(self, member: Member, X32: np.ndarray) -> np.ndarray:
        """Rows X32 (n, d) as the member takes them: (n, C, H, W) images when its manifest
        declares ``input.shape`` (publishing probes image models so), else the rows in its units."""
        if member.input_shape is None:
            scale = self.scale(member)
            if scale is not None:
                try:
                    X32 = rows_in_units(X32, scale)
                except UnitsOutOfRange as exc:
                    raise self._out_of_range(member, exc) from None
            # Rows are in the space's column order; the model takes its own (matched by name).
            return (
                X32 if member.input_order is None else np.ascontiguousarray(X32[:, list(member.input_order)])
            )
        theirs = member.input_shape
        if self.image_shape is not None and self.image_shape != theirs:
            raise ValidationFailed(
                f"your images are {self.image_shape} (C, H, W); learnware {member.name} "
                f"v{member.number} takes {theirs}: resize your images to {theirs}",
                code="submission:user:image-shape",
            )
        try:
            return np.ascontiguousarray(rows_as_images(X32, theirs))
        except SpecError as exc:
            raise ValidationFailed(
                f"your images are rows of {X32.shape[1]} pixels; learnware {member.name} "
                f"v{member.number} takes images of shape {theirs} ({int(np.prod(theirs))} pixels): {exc}",
                code="submission:user:image-shape",
            ) from exc

    def raw(
        self, member: Member, X: np.ndarray, keep: tuple[int, ...] = (), rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The model's output on rows X (n, d): (n, C) scores or (n,) / (n, t) values; X filled by
        the run's plan, refilled for this member (:meth:`member_rows`; ``keep`` as there). ``rows``: the
        labelled sample's indices X holds, one per row (what ``rebase`` feeds a member on its own base).

        For an image learnware X holds pixel rows (n, C*H*W) in (C, H, W) order (see :meth:`inputs`)."""
        if self.rebase is not None:
            X = self.rebase(member.version_id, X, rows)
        X = self.member_rows(member, X, keep)
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        key = (member.version_id, hashlib.sha256(X32.tobytes()).hexdigest())
        if key not in self._outputs:
            model_input = self.inputs(member, X32)
            try:
                out = run_model(self.artifact(member), model_input, kind=member.artifact_format)
            except SandboxUnavailable as exc:
                raise TransientError(str(exc)) from exc
            except SandboxError as exc:
                raise ApplicationError(
                    f"learnware {member.name} v{member.number} failed on your rows: {exc}",
                    code="submission:app:member-failed",
                    http_status=500,
                ) from exc
            out = np.asarray(out, dtype=np.float64)
            if out.shape[0] != X.shape[0] or not np.isfinite(out).all():
                raise ApplicationError(
                    f"learnware {member.name} v{member.number} gave {out.shape} non-finite or misshapen "
                    "outputs",
                    code="submission:app:member-failed",
                    http_status=500,
                )
            self._outputs[key] = out
        return self._outputs[key]


def to_task_classes(raw: np.ndarray, member: Member, classes: list[str]) -> np.ndarray:
    """(n, len(classes)) probabilities: the member's columns moved to the task's class order."""
    if raw.ndim == 1 and member.classes:
        # Hard labels in [0, n_classes) (allowed by the package format) count as one-hot votes.
        probs = np.eye(len(member.classes))[np.clip(raw.astype(np.int64), 0, len(member.classes) - 1)]
    else:
        probs = probabilities(raw)
    own = member.classes or [str(i) for i in range(probs.shape[1])]
    if len(own) != probs.shape[1]:
        raise ApplicationError(
            f"learnware {member.name} outputs {probs.shape[1]} scores for {len(own)} classes",
            code="submission:app:member-failed",
            http_status=500,
        )
    return in_task_classes(probs, own, classes)
