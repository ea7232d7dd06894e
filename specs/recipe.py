"""Predict with an assembly package (``recipe.json`` + ``assembly.lwa`` + members): the one
implementation the market's pipeline, its tests and the client (``lwm_client.predict``) run.

A package is built by a submission's ``package`` stage (``workers/pipelines/reuse_package.py``):
``recipe.json`` names the method, the task's classes, the space transform (``rms``, ``mean``,
``scale``, ``unit_free``; for images ``image: {encoder, seed, shape}``) and every member's
artifact with its sha256, classes, ``input_shape`` and ``input_map`` (and, when the user lacked
columns, ``impute``: the member's own RKME fill of them, ``specs.impute.member_rows``; recipes built
before it have none and every member sees the ``input.impute`` plan's rows). How a member's model file
becomes a callable is the caller's (``load_member``): the server loads the artifacts the market
checked, the client runs the upload checks first and maps their errors to its own.

Only numpy and ``specs`` are imported here; the members' runtimes come with ``load_member``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import yaml

from specs.assembly import Assembly
from specs.exceptions import SpecError
from specs.image_spaces import CONV_ENCODER, LITE0_ENCODER, image_encoder
from specs.images import image_rows, rows_as_images
from specs.impute import member_rows, recipe_rows

RECIPE_FORMAT = "lwm-assembly-recipe"
RECIPE_VERSION = 2  # 2: a member may carry its own ``base`` (a text head pinned to another base version)
READABLE_VERSIONS = (1, 2)
_SHA256 = re.compile(r"[0-9a-f]{64}")

MemberModel = Callable[[np.ndarray], np.ndarray]  # float32 inputs -> raw outputs (float64)
LoadMember = Callable[[bytes, str], MemberModel]  # (artifact bytes, format) -> model


class RecipeError(SpecError):
    """A recipe this runtime cannot run (format, version, encoder or assembly kind)."""

    code = "predict:user:recipe"


class RecipeChecksumError(RecipeError):
    """A file of the package does not match the sha256 the recipe records."""

    code = "predict:user:checksum"


class RecipeColumnsError(RecipeError):
    """Table rows whose column count is not the recipe's ``input.columns`` (the submitter's data, as
    given)."""

    code = "predict:user:columns"


class RecipeShaError(RecipeError):
    """A base reference's ``package_sha256`` is not 64 lowercase hex characters (it names files on disk,
    so anything else, such as ``../x``, is refused before it reaches a path)."""

    code = "predict:user:base-sha256"


def recipe_version(members: list[dict[str, Any]]) -> int:
    """The version a recipe with these member entries is written as: 2 only when a member carries its
    own ``base`` (a reader of version 1 only would feed it the wrong version's embeddings, so it must
    refuse); every other recipe stays version 1, readable by older clients and byte-identical to theirs."""
    return RECIPE_VERSION if any(entry.get("base") for entry in members) else 1


def checked_sha256(ref: Mapping[str, Any]) -> str | None:
    """A base reference's ``package_sha256``, checked to be 64 lowercase hex characters; None when it has
    none (a registered base). Raises :class:`RecipeShaError` for anything else."""
    sha = ref.get("package_sha256")
    if sha is None or sha == "":
        return None
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise RecipeShaError(
            f"base reference package_sha256 {str(sha)[:80]!r} is not a sha256 (64 hex digits)"
        )
    return sha


class RecipeMemberBaseError(RecipeError):
    """A member runs on its own base version (its entry's ``base``) and its rows were not given."""

    code = "predict:user:member-base-rows"


def space_rows(X: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Table rows as the submitter gave them (the recipe's ``input.columns``: any order, extra
    columns) -> the space's column order by ``input.index``, a column they lacked filled by the
    ``input.impute`` plan; the rows themselves when the recipe has no ``input`` (space order)."""
    given = recipe.get("input")
    if not given:
        return X
    if X.ndim != 2 or X.shape[1] != len(given["columns"]):
        raise RecipeColumnsError(
            f"rows have {X.shape[-1]} columns; this package takes {len(given['columns'])}: "
            f"{', '.join(given['columns'][:12])}"
        )
    return recipe_rows(X, given)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Rows of class scores as probabilities: kept if they already are, else a softmax."""
    if raw.ndim == 1:
        raise ValueError("a classifier must output (n, C) scores")
    if (raw >= 0).all() and np.allclose(raw.sum(axis=1), 1.0, atol=1e-4):
        return raw
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def member_inputs(X: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """Rows X (n, d) as the recipe member takes them: (n, C, H, W) float32 when it declares an
    ``input_shape`` (an image learnware, probed so at publishing), else float32 rows in the
    member's units (its ``input_map.scale``, when the recipe has one) and in its model's column
    order (``input_map.order``: its columns as indices into the space's, applied after the scale)."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    mapping = entry.get("input_map") or {}
    if mapping.get("scale") is not None:
        X32 = np.ascontiguousarray(X32 * np.asarray(mapping["scale"], dtype=np.float32))
    if mapping.get("order") is not None:  # the member's own column order (matched by name at packaging)
        X32 = np.ascontiguousarray(X32[:, np.asarray(mapping["order"], dtype=np.int64)])
    shape = entry.get("input_shape")
    return np.ascontiguousarray(rows_as_images(X32, shape)) if shape else X32


def in_task_classes(probs: np.ndarray, own: list[str] | None, classes: list[str]) -> np.ndarray:
    """(n, len(classes)) probabilities: a member's columns (its ``own`` classes, else 0..C-1)
    moved to the task's class order; classes the member does not know get 0."""
    names = own or [str(i) for i in range(probs.shape[1])]
    out = np.zeros((probs.shape[0], len(classes)))
    position = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(names):
        if c in position:
            out[:, position[c]] = probs[:, j]
    return out


def predict_assembly(
    assembly: Assembly, *, task: str, n_classes: int | None, outputs: list[np.ndarray], Xs: np.ndarray
) -> np.ndarray:
    """(n, C) class probabilities for classification, (n,) predictions for regression.

    ``outputs``: each member's (n, C) probabilities in the task's class order, or (n,)
    predictions; ``Xs`` (n, d): the rows in the space's coordinates."""
    a: Any = assembly  # the kinds' predict signatures differ (outputs, or outputs and rows)
    if assembly.kind in ("best_single", "weighted_ensemble"):
        return a.predict_proba(outputs) if task == "classification" else a.predict(outputs)
    if assembly.kind in ("rkme_job_selector", "rkme_soft_selector", "trained_job_selector"):
        return a.predict_proba(outputs, Xs) if task == "classification" else a.predict(outputs, Xs)
    if assembly.kind == "stitching_head":
        blocks = [Xs, *outputs]
        if task != "classification":
            return a.predict(blocks)
        assert n_classes is not None
        full = np.zeros((Xs.shape[0], n_classes))
        full[:, a.classes_.astype(np.int64)] = a.predict_proba(blocks)
        return full
    raise RecipeError(f"unknown assembly kind {assembly.kind!r}")


class RecipeTransform:
    """The recipe's ``transform``: table rows -> ((x / rms if unit_free) - mean) / scale; image rows
    (n, C*H*W) -> the space's encoder's output (n, dim): conv or Lite0 (``specs.image_spaces``)."""

    def __init__(self, transform: dict[str, Any]) -> None:
        self.image: dict[str, Any] | None = transform.get("image")
        self.rms, self.mean, self.scale = (
            np.asarray(transform[k], dtype=np.float64) for k in ("rms", "mean", "scale")
        )
        self.unit_free = bool(transform["unit_free"])
        self._encoder: Any = None
        if self.image is not None and self.image.get("encoder") not in (CONV_ENCODER, LITE0_ENCODER):
            raise RecipeError(f"unknown image encoder {self.image.get('encoder')!r}")

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.image is not None:
            if self._encoder is None:  # the space's own encoder (one implementation: specs.image_spaces)
                self._encoder = image_encoder(self.image)
            rows = np.ascontiguousarray(X, dtype=np.float32)
            return np.asarray(self._encoder.encode(rows.reshape(-1, *self.image["shape"])), dtype=np.float64)
        U = X / self.rms if self.unit_free else X
        return (U - self.mean) / self.scale


def member_base(entry: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any] | None:
    """A recipe member's own base reference (the fields of ``recipe.base``), None when it runs on the
    recipe's ``base`` (or the recipe has none): only a version-2 recipe's member may carry one."""
    ref = entry.get("base")
    if not ref:
        return None
    if recipe.get("version") != RECIPE_VERSION:  # a reader of version 1 would not know to look here
        raise RecipeError(
            f"member {entry.get('name')!r} carries a base in a version-{recipe.get('version')} recipe"
        )
    if not isinstance(ref, dict) or not ref.get("package_sha256") or not isinstance(recipe.get("base"), dict):
        raise RecipeError(f"member {entry.get('name')!r}: its base reference is incomplete")
    checked_sha256(ref)
    return None if ref["package_sha256"] == recipe["base"].get("package_sha256") else ref


def _own_rows(ref: dict[str, Any], base_rows: Mapping[str, np.ndarray] | None, n: int) -> np.ndarray:
    rows = (base_rows or {}).get(str(ref["package_sha256"]))
    if rows is None or rows.shape[0] != n:
        raise RecipeMemberBaseError(
            f"a member runs on base model {ref.get('key')} v{ref.get('version')} (package "
            f"{ref['package_sha256']}): the inputs embedded by that version are needed"
        )
    return np.asarray(rows, dtype=np.float64)


def package_files(content: bytes) -> dict[str, bytes]:
    """Files of a package zip (name -> bytes), folders left out."""
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}


class RecipePredictor:
    """``predict`` / ``predict_proba`` of an assembly package, every file checked against the recipe."""

    def __init__(self, files: dict[str, bytes], load_member: LoadMember) -> None:
        self.manifest: dict[str, Any] = yaml.safe_load(files["learnware.yaml"])
        self.recipe: dict[str, Any] = json.loads(files["recipe.json"])
        if self.recipe.get("format") != RECIPE_FORMAT or self.recipe.get("version") not in READABLE_VERSIONS:
            readable = " or ".join(map(str, READABLE_VERSIONS))
            raise RecipeError(f"recipe.json is not a {RECIPE_FORMAT} recipe of version {readable}")
        blob = files[self.recipe["assembly"]["path"]]
        if sha256_hex(blob) != self.recipe["assembly"]["sha256"]:
            raise RecipeChecksumError("assembly.lwa does not match the sha256 in recipe.json")
        self.assembly = Assembly.from_bytes(blob)
        self.task: str = self.recipe["task"]
        self.classes: list[str] = list(self.recipe.get("classes") or [])
        self.transform = RecipeTransform(self.recipe["transform"])
        self.members: list[tuple[MemberModel, dict[str, Any]]] = []
        for entry in self.recipe["members"]:
            raw = files[entry["artifact"]["path"]]
            if sha256_hex(raw) != entry["artifact"]["sha256"]:
                raise RecipeChecksumError(
                    f"{entry['artifact']['path']} does not match its sha256 in recipe.json"
                )
            self.members.append((load_member(raw, entry["artifact"].get("format", "torchscript")), entry))

    def rows(self, X: Any) -> np.ndarray:
        """The inputs as rows (n, d) float64: table rows in raw units with the recipe's
        ``input.columns`` (see :func:`space_rows`), in the space's order; images flattened in
        (C, H, W) order (see :func:`specs.images.image_rows`)."""
        image = self.transform.image
        return (
            image_rows(X, image["shape"])
            if image
            else space_rows(np.asarray(X, dtype=np.float64), self.recipe)
        )

    def member_bases(self) -> dict[str, dict[str, Any]]:
        """package sha256 -> the base reference of every member that runs on another base version than
        the recipe's ``base`` (its entry's own ``base``: a text head pinned to that version)."""
        return {
            str(ref["package_sha256"]): ref
            for _, entry in self.members
            if (ref := member_base(entry, self.recipe)) is not None
        }

    def member_outputs(
        self, X: np.ndarray, base_rows: Mapping[str, np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Each member alone on rows X: (n, C) probabilities in the task's class order, or (n,) values.

        A member with its own ``base`` takes the same inputs embedded by that version instead:
        ``base_rows[<its package sha256>]`` (the caller embeds them, :meth:`member_bases`).
        Rows filled by the recipe's ``input.impute`` plan are refilled for a member whose entry holds
        its own fill (``impute``: its RKME's conditional mean, ``specs.impute.member_rows``); recipes
        built before per-member fills have none and every member sees the plan's rows."""
        plan = (self.recipe.get("input") or {}).get("impute")
        out = []
        for model, entry in self.members:
            ref = member_base(entry, self.recipe)
            if ref is not None:
                X_own = _own_rows(ref, base_rows, X.shape[0])
            elif plan and entry.get("impute"):
                scale = (entry.get("input_map") or {}).get("scale")
                X_own = member_rows(X, plan, entry["impute"], None if scale is None else np.asarray(scale))
            else:
                X_own = X
            raw = np.asarray(model(member_inputs(X_own, entry)), dtype=np.float64)
            if self.task != "classification":
                out.append(raw.reshape(raw.shape[0], -1)[:, 0])
            else:
                out.append(in_task_classes(probabilities(raw), entry.get("classes"), self.classes))
        return out

    def predict_proba(self, X: Any, base_rows: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """(n, C) probabilities over ``recipe['classes']`` (classification) or (n,) predictions;
        ``base_rows``: see :meth:`member_outputs` (needed when :meth:`member_bases` is not empty)."""
        rows = self.rows(X)
        nc = len(self.classes) if self.task == "classification" else None
        return predict_assembly(
            self.assembly,
            task=self.task,
            n_classes=nc,
            outputs=self.member_outputs(rows, base_rows),
            Xs=self.transform(rows),
        )

    def predict(self, X: Any, base_rows: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Class names (n,) or regression predictions (n,)."""
        out = self.predict_proba(X, base_rows)
        if self.task != "classification":
            return out
        return np.asarray(self.classes)[out.argmax(axis=1)]
