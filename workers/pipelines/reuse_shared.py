"""Helpers more than one reuse stage uses: candidates and members of the run, the task's classes
and labels, identification weights, the delivery rule, and the package zip.

They lived in whichever stage needed them first and were imported across modules under
private names; here they are public, and a stage module imports only from here, from
``reuse_context`` / ``reuse_results`` / ``reuse_members`` / ``reuse_methods``, never another stage.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable

import numpy as np

from specs import RKMESpecification, SpecError, rkme_from_json
from specs.evaluation import Folds, repeated_folds
from specs.units import mixture_unit_factor
from workers.pipelines.reuse_base_pins import member_inputs
from workers.pipelines.reuse_context import ImageSpaceTransform, ReuseContext
from workers.pipelines.reuse_members import Member, OutputCache, members_load, to_task_classes
from workers.pipelines.reuse_results import Json

DEFAULT_MAX_MODULES = 3
MAX_CANDIDATES = 5
CV_FOLDS, CV_REPEATS = 5, 4
LABEL_FREE = "label_free"
RANK_MEANING = {  # what each ranking score says (rank stages of models and adapters)
    "mmd2": "squared MMD to your data (lower: more alike)",
    "logme": "LogME evidence of a linear model on the learnware's outputs (higher: more transferable)",
    "hscore": "regularised H-score of its outputs (higher: classes better separated)",
    "knn": "leave-one-out 3-NN accuracy on its outputs",
    "accuracy": "accuracy of its own predictions on your labelled rows (only where label spaces match)",
    "r2": "R^2 of its predictions on your labelled targets",
}


# --- candidates and members ----------------------------------------------------------------------
def max_modules(ctx: ReuseContext) -> int:
    return int(ctx.requirements.get("max_modules", DEFAULT_MAX_MODULES))


def candidate_ids(ctx: ReuseContext) -> list[int]:
    """Mixture components first, then the best singles, at most MAX_CANDIDATES."""
    ident = ctx.identify_result
    mixture = ident.mixture
    ids = [c["version_id"] for c in mixture["components"]] if mixture["proposed"] else []
    for single in ident.singles:
        if single["version_id"] not in ids:
            ids.append(single["version_id"])
    n_mixture = len(mixture["components"]) if mixture["proposed"] else 0
    return ids[: max(MAX_CANDIDATES, n_mixture)]


def identified_weights(ctx: ReuseContext) -> dict[int, float]:
    """version id -> identification weight: the proposed mixture's, else 1 on the best single."""
    ident = ctx.identify_result
    if ident.mixture["proposed"]:
        return {c["version_id"]: float(c["weight"]) for c in ident.mixture["components"]}
    return {ident.singles[0]["version_id"]: 1.0}


def identified_mmd2(ctx: ReuseContext) -> dict[int, float]:
    """version id -> squared MMD to the user's data, for the ranked singles."""
    return {s["version_id"]: s["mmd2"] for s in ctx.identify_result.singles}


def unit_factor(ctx: ReuseContext) -> np.ndarray | None:
    """User units per market unit (``specs.units``) from the identified members' stored RMS;
    None when the user's RMS or every identified member's is unknown."""
    user = ctx.user_rms
    if user is None:
        return None
    weights = identified_weights(ctx)
    loaded = {m.version_id: m for m in members_load(list(weights))}
    known = [(rms, w) for v, w in weights.items() if (rms := loaded[v].unit_rms) is not None]
    if not known or sum(w for _, w in known) <= 0:
        return None
    return mixture_unit_factor(user, [r for r, _ in known], [w for _, w in known])


def space_column_names(ctx: ReuseContext) -> list[str] | None:
    """The table space's column names (None for images and texts)."""
    columns = (ctx.space.schema or {}).get("columns") or []
    return [c["name"] if isinstance(c, dict) else str(c) for c in columns] or None


def context_members(ctx: ReuseContext, ids: list[int]) -> tuple[list[Member], OutputCache]:
    """Members of ``ids`` (loaded once a run) and the run's output cache."""
    cache = ctx.cache
    if cache.outputs is None:
        # With images, the cache knows the user's [C, H, W] so a member of another size is refused by name.
        shape = ctx.transform.shape if isinstance(ctx.transform, ImageSpaceTransform) else None
        cache.outputs = OutputCache(
            image_shape=shape,
            unit_factor=unit_factor(ctx),
            imputation=ctx.imputation,
            rebase=member_inputs(ctx),  # a text head pinned to another base version: that version's rows
            columns=space_column_names(ctx),
        )
    missing = [i for i in ids if i not in cache.members]
    for m in members_load(missing) if missing else []:
        cache.members[m.version_id] = m
    return [cache.members[i] for i in ids], cache.outputs


def prior_weights(ctx: ReuseContext, ids: list[int]) -> np.ndarray:
    """Mixture weights of the members (renormalised); one-hot on the best MMD when there is no mixture."""
    mixture = ctx.identify_result.mixture
    if mixture["proposed"]:
        w = {c["version_id"]: c["weight"] for c in mixture["components"]}
        prior = np.array([w.get(i, 0.0) for i in ids])
        if prior.sum() > 0:
            return prior / prior.sum()
    mmd = identified_mmd2(ctx)
    return np.eye(len(ids))[int(np.argmin([mmd.get(i, np.inf) for i in ids]))]


def user_rows(ctx: ReuseContext) -> np.ndarray | None:
    """The user's rows in the feature space saved by the spec stage (None for an uploaded RKME)."""
    stored = ctx.spec_result.rows_file
    if not stored:
        return None
    return np.load(io.BytesIO(ctx.work_load(stored["file"])), allow_pickle=False)


def user_spec(ctx: ReuseContext) -> RKMESpecification:
    """The user's RKME written by the spec stage (read back once a run)."""
    if ctx.cache.user_spec is None:
        ctx.cache.user_spec = rkme_from_json(ctx.work_load(ctx.spec_result.rkme_file["file"]))
    return ctx.cache.user_spec


# --- the task's classes, labels and member outputs ----------------------------------------------------
def task_classes(ctx: ReuseContext, members: list[Member]) -> list[str]:
    """The classes of the task: the user's labelled classes and every candidate's (sorted).

    The union, not the user's classes alone: a labelled sample of 50 rows may miss a class the
    user's other rows hold (or hold a single class), and the package must still predict it."""
    labelled = ctx.spec_result.labelled or {}
    names = set(labelled.get("classes") or [])
    for m in members:
        names |= set(m.classes or [])
    return sorted(names, key=lambda c: (0, int(c), c) if c.lstrip("-").isdigit() else (1, 0, c))


def labelled_codes(ctx: ReuseContext, classes: list[str]) -> np.ndarray:
    """The labelled targets: class indices in ``classes`` order, or float targets for regression."""
    table = ctx.labelled_table
    assert table is not None and table.y is not None
    if ctx.submission.task != "classification":
        return table.y.astype(np.float64)
    position = {c: i for i, c in enumerate(classes)}
    return np.array([position[str(v)] for v in table.y], dtype=np.int64)


def task_outputs(
    ctx: ReuseContext,
    members: list[Member],
    X: np.ndarray,
    classes: list[str],
    keep: tuple[int, ...] = (),
    rows: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Each member's outputs on X in the task's terms: (n, C) probabilities or (n,) predictions
    (``keep``: columns of X holding true values; ``rows``: the labelled indices X holds, needed when a
    member runs on its own base version; see ``OutputCache.raw``)."""
    _, cache = context_members(ctx, [m.version_id for m in members])
    out = []
    for m in members:
        raw = cache.raw(m, X, keep, rows)
        out.append(
            to_task_classes(raw, m, classes)
            if ctx.submission.task == "classification"
            else raw.reshape(raw.shape[0], -1)[:, 0]
        )
    return out


def labels_usable(ctx: ReuseContext) -> tuple[bool, str]:
    """Whether the labelled methods can be fitted at all, and why not."""
    labelled = ctx.spec_result.labelled or {}
    if ctx.submission.task == "classification" and labelled.get("single_class"):
        return False, (
            f"your labelled rows hold a single class {labelled.get('classes')}: no method can learn from "
            "them, "
            "so the label-free package is delivered and the labels only measure it"
        )
    return True, ""


def cv_folds(ctx: ReuseContext, y: np.ndarray) -> Folds:
    """The repeated (stratified) folds every labelled comparison of the run is made on."""
    return repeated_folds(
        y, stratify=ctx.submission.task == "classification", k=CV_FOLDS, repeats=CV_REPEATS, seed=ctx.seed
    )


def deliverable(ctx: ReuseContext, fitted: list[Json]) -> tuple[str, list[str]]:
    """(default, names) of the fitted rows that may be delivered: every one, unless the user's
    ``methods`` allow-list excludes some kinds; the default is the label-free choice when
    allowed, else the allowed method with the highest mean cross-validated score."""
    allowed = ctx.requirements.get("methods")
    names = [r["method"] for r in fitted if not allowed or r.get("assembly_kind", r["method"]) in allowed]
    if LABEL_FREE in names or not names:
        return LABEL_FREE, names or [LABEL_FREE]
    best = max(
        (r for r in fitted if r["method"] in names), key=lambda r: float(np.mean(r["validation"]["per_fold"]))
    )
    return best["method"], names


# --- scores that may be undefined ---------------------------------------------------------------------
def safe_scores(estimators: dict[str, Callable[[], float]]) -> dict[str, float | None]:
    """Each estimator's value, None where it is undefined (e.g. constant outputs: undefined, not zero)."""
    out: dict[str, float | None] = {}
    for name, compute in estimators.items():
        try:
            out[name] = float(compute())
        except (SpecError, np.linalg.LinAlgError, ValueError):
            out[name] = None
    return out


# --- the package zip ------------------------------------------------------------------------------------
_EPOCH = (1980, 1, 1, 0, 0, 0)


def deterministic_zip(files: dict[str, bytes]) -> bytes:
    """Entries in name order with a fixed timestamp: the same files give the same bytes (and sha256)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def license_expression(licenses: list[str]) -> str:
    """One SPDX expression for the members' licences (AND of the distinct ones)."""
    unique = sorted(set(licenses))
    return unique[0] if len(unique) == 1 else " AND ".join(unique)
