"""Missing columns in a submission: which learnware's RKME fills them, and the plan the package keeps.

A user table lacking some of the space's columns is compared with the space's learnwares on
the shared columns (``specs.marginal``: the restricted RKME is the marginal's embedding); the
best match's RKME fills the missing columns by their conditional mean given the user's columns
(``specs.impute``), in the developer's units: those are the rows the assembly's own transform sees
(the identified learnware is the one whose distribution the user's rows follow on what they share).
Each member, though, receives the columns from its OWN RKME (``specs.impute.member_rows``): the
conditional mean under its developer's distribution, in its units, is what its model was trained
on; members may disagree about how a column relates to the others, and the identified one's
relation is the wrong input for the rest. A member whose RKME cannot fill (another dimension, no
positive weight) keeps the identified learnware's fill; the plan lists which candidates fill from
their own (``own_rkme``) and the report says so per member. The plan travels in the package's
recipe, each member's fill in its recipe entry, so a prediction fills them the same way.

When the user's labelled file holds a missing column (and the columns they share), with at least
``MIN_RIDGE_ROWS`` complete rows, that column may be learned from those rows instead: a ridge
regression on the shared columns, λ by generalised cross-validation (``specs.impute_ridge``), in
the user's units (method ``labelled-rows-ridge``). The user's own examples follow their own
relation where it differs from the developer's, but a linear fit on few rows can be worse than the
RKME's conditional mean: the labelled rows hold the truth, so both are scored there (the ridge out
of fold) and the smaller error wins (``learn_columns``). Below 20 rows, five folds of four rows make
that comparison itself too noisy. The plan records each column's method and the errors compared.

The labelled rows themselves are filled out of fold (``specs.impute_ridge.fill_labelled``): every
score computed on them (ranking, assembly, evaluation, the imputation cost) reads this one table,
and a fill learned from the row it fills would make each member look better there than it will on
new rows. The data's rows and the package use the ridge fitted on every labelled row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace, Specification
from marketplace.search.selectors import eligible_versions
from specs.columns import Alignment, align
from specs.impute import can_fill, impute_raw
from specs.impute_ridge import RIDGE_METHOD, RKME_METHOD, choose_column, fill_labelled
from specs.marginal import embedding_terms, restricted_gamma, to_space_units
from specs.units import unit_rms

MIN_COVERAGE = 0.5  # a space is used with imputation when the user holds at least half its columns
MIN_SHARED = 2
USER_POINTS = 256
MIN_RIDGE_ROWS = 20  # complete labelled rows needed to learn a column from them (module docstring)


def plan_imputation(
    *,
    owner: Any,
    space: FeatureSpace,
    alignment: Alignment,
    X: np.ndarray,
    seed: int = 0,
    labelled: tuple[list[str], np.ndarray] | None = None,
) -> dict[str, Any]:
    """The imputation plan (``specs.impute.impute_raw``) for the user's rows ``X`` (raw, their columns);
    ``labelled`` (column names after the column map, raw rows) may teach some missing columns."""
    std = space.standardization or {}
    mean = np.asarray(std.get("mean", [0.0] * space.dim), dtype=np.float64)
    scale = np.asarray(std.get("scale", [1.0] * space.dim), dtype=np.float64)
    unit_free = bool(std.get("scale_invariant"))
    obs = np.flatnonzero(alignment.index >= 0)
    mis = np.flatnonzero(alignment.index < 0)
    Xo = X[:, alignment.index[obs]].astype(np.float64)
    rms = unit_rms(Xo)
    U = to_space_units(Xo, mean=mean[obs], scale=scale[obs], rms=rms if unit_free else None)
    if U.shape[0] > USER_POINTS:
        U = U[np.sort(np.random.default_rng(seed).choice(U.shape[0], USER_POINTS, replace=False))]
    eligible = eligible_versions(user=owner, filters={"modality": "table"}).values_list("id", flat=True)
    best: tuple[float, Any] | None = None
    own: list[dict[str, Any]] = []
    for spec in Specification.objects.filter(feature_space=space, version_id__in=eligible).select_related(
        "version__learnware"
    ):
        Z, beta = (
            np.asarray(spec.rkme["Z"], dtype=np.float64),
            np.asarray(spec.rkme["beta"], dtype=np.float64),
        )
        mmd2 = embedding_terms(
            U, np.full(U.shape[0], 1.0 / U.shape[0]), Z[:, obs], beta, restricted_gamma(obs.size)
        ).mmd2
        if best is None or mmd2 < best[0]:
            best = (mmd2, spec)
        own.append(_card(spec) | {"own": can_fill(Z, beta, space.dim)})
    if best is None:
        raise LookupError(f"no published learnware in {space.key} to fill the missing columns from")
    mmd2, spec = best
    lw_rms = spec.rkme.get("unit_rms")
    rms_missing = (
        np.asarray(lw_rms, dtype=np.float64)[mis] if lw_rms is not None else np.ones(mis.size)
    ).tolist()
    names = [alignment.target[j] for j in mis]
    plan: dict[str, Any] = {
        "observed": obs.tolist(),
        "missing": mis.tolist(),
        "columns": names,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "unit_free": unit_free,
        "rms": rms.tolist(),
        "rms_missing": rms_missing,
        "gamma": None,
        "Z": spec.rkme["Z"],
        "beta": spec.rkme["beta"],
        "source": _card(spec) | {"marginal_mmd2": mmd2},
        "method": RKME_METHOD,
        "methods": dict.fromkeys(names, RKME_METHOD),
        "ridge": [],
        "compared": [],
        "own_rkme": own,  # which candidate members fill from their own RKME (report only)
    }
    if labelled:
        compared = learn_columns(alignment.target, plan, labelled)
        learned = [c for c in compared if c["method"] == RIDGE_METHOD]
        for r in learned:  # in the user's units: their RMS is the column's own (specs.impute.filled_rms)
            rms_missing[mis.tolist().index(r["column"])] = r["rms"]
        plan["methods"] |= {r["name"]: RIDGE_METHOD for r in learned}
        kinds = set(plan["methods"].values())
        plan["method"] = kinds.pop() if len(kinds) == 1 else "per-column"
        plan["ridge"] = learned
        plan["compared"] = [
            {k: c[k] for k in ("name", "rows", "error_ridge", "error_rkme", "method")} for c in compared
        ]
    plan["explanation"] = _explanation(names, plan["ridge"], spec, obs.size, mmd2)
    return plan


def _card(spec: Any) -> dict[str, Any]:
    """The learnware version of a stored RKME, as the report links it."""
    return {
        "version_id": spec.version_id,
        "learnware_id": spec.version.learnware_id,
        "name": spec.version.learnware.name,
        "version": spec.version.number,
    }


def _explanation(names: list[str], learned: list[dict[str, Any]], spec: Any, n_obs: int, mmd2: float) -> str:
    taught = [r["name"] for r in learned]
    rest = [n for n in names if n not in taught]
    parts = []
    if rest:
        parts.append(
            f"{len(rest)} column(s) you lack ({', '.join(rest[:8])}) are predicted, for each member, "
            f"from its own RKME given your {n_obs} columns (the conditional mean under its weighted "
            "points: a linear part plus kernel regression, in its units); "
            f"{spec.version.learnware.name} v{spec.version.number}'s RKME, which matches your rows best "
            f"on the shared columns (MMD² {mmd2:.4f}), fills them for the assembly itself and for any "
            "member whose RKME cannot"
        )
    if taught:
        rows = min(r["rows"] for r in learned)
        parts.append(
            f"{len(taught)} column(s) ({', '.join(taught[:8])}) are learned from your {rows} labelled rows "
            f"that hold them: ridge regression on your {n_obs} shared columns, its penalty chosen by "
            "generalised cross-validation (it predicted them better there, out of fold, than the RKME)"
        )
    return "; ".join(parts)


def learn_columns(
    target: list[str], plan: dict[str, Any], labelled: tuple[list[str], np.ndarray]
) -> list[dict[str, Any]]:
    """Each missing column the labelled rows hold (with every observed column, in at least
    ``MIN_RIDGE_ROWS`` rows): its ridge fit on the observed columns and the method that predicts it
    better on those rows (``specs.impute_ridge.choose_column``)."""
    names, XL = labelled
    where = {n: i for i, n in enumerate(names)}
    obs = np.asarray(plan["observed"], dtype=np.int64)
    shared = [target[j] for j in obs]
    if not all(n in where for n in shared):
        return []  # the labelled file lacks a column the data hold: refused by name later
    Xo = np.asarray(XL, dtype=np.float64)[:, [where[n] for n in shared]]
    out = []
    for j in plan["missing"]:
        name = target[int(j)]
        if name not in where:
            continue
        y = np.asarray(XL, dtype=np.float64)[:, where[name]]
        ok = np.isfinite(y) & np.isfinite(Xo).all(axis=1)
        if ok.sum() < MIN_RIDGE_ROWS:
            continue
        out.append({"name": name} | choose_column(Xo[ok], y[ok], plan, int(j)))
    return out


def public_plan(plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a report shows of a plan (no points): each column's method, and for the columns the
    labelled rows hold the errors that chose it (``learn_columns``)."""
    if not plan:
        return None
    shown = {k: plan[k] for k in ("columns", "method", "source", "explanation")}
    methods = plan.get("methods") or {c: plan["method"] for c in plan["columns"]}
    fits = {r["name"]: {"alpha": r["alpha"]} for r in plan.get("ridge") or []}
    compared = {c["name"]: c for c in plan.get("compared") or []}
    shown["per_column"] = [
        {"column": c, "method": methods[c]}
        | ({"filled_by": filled_by(plan)} if methods[c] == RKME_METHOD else {})
        | fits.get(c, {})
        | ({k: compared[c][k] for k in ("rows", "error_ridge", "error_rkme")} if c in compared else {})
        for c in plan["columns"]
    ]
    return shown


def filled_by(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Per candidate member (the space's learnwares the plan saw), whose RKME fills its RKME columns:
    its own (``rkme: "own"``), or the identified learnware's when its own cannot (``"identified"``).
    Plans stored before per-member fills list none: every member saw the identified one's fill."""
    return [
        {k: c[k] for k in ("version_id", "learnware_id", "name", "version")}
        | {"rkme": "own" if c["own"] else "identified"}
        for c in plan.get("own_rkme") or []
    ]


def fill_table(
    names: list[str], columns: list[str], X: np.ndarray, plan: dict[str, Any], field: str, *, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """A table (its ``names``, raw rows) in the space's ``columns`` order with the plan's columns
    filled, whether or not the table holds them (the members see the rows as the package fills
    them); and the rows with the true values where it holds some (None if none), which measure what
    imputation cost (``reuse_impute_cost``). Rows that taught a column the plan learned get it out
    of fold (``specs.impute_ridge.fill_labelled``, ``seed``'s folds), every other row the plan's."""
    alignment = align(names, columns)
    if not set(alignment.missing) <= set(plan["columns"]):
        raise ValidationFailed(
            f"{field}: lacks {alignment.missing}, the data lack {plan['columns']}: send both with "
            "the same columns",
            code="submission:user:missing-columns",
        )
    held = alignment.apply(X)
    given = held.copy()
    given[:, plan["missing"]] = np.nan
    truth = held if len(alignment.missing) < len(plan["columns"]) else None
    filled = impute_raw(given, plan) if truth is None else fill_labelled(given, truth, plan, seed=seed)
    return filled, alignment.target, truth
