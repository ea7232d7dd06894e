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
of fold) and the smaller error wins, per member: the ridge (one fit, the user's data) against each
member's OWN RKME (``learn_columns``; ``specs.impute_ridge.choose_column``'s ``members``). The plan's
rows hold the ridge in every column some member takes from it; each member's fill lists the columns
it takes from the ridge (``own_rkme[].ridge`` -> its recipe entry's ``impute.ridge``) and refills the
others from its own RKME. Below 20 rows, five folds of four rows make that comparison itself too
noisy. The plan records each column's method and the errors compared, per member.

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
from specs.impute import impute_raw, member_fill
from specs.impute_ridge import RIDGE_METHOD, RKME_METHOD, choose_column, fill_labelled
from specs.marginal import embedding_terms, restricted_gamma, to_space_units
from specs.units import unit_rms

MIN_COVERAGE = 0.5  # a space is used with imputation when the user holds at least half its columns
MIN_SHARED = 2
USER_POINTS = 256
PER_MEMBER = "per-member"  # a column some members take from the ridge and others from their own RKME
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
    candidates: list[Any] = []
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
        candidates.append(spec)
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
    }
    # Each candidate member's own fill (specs.impute.member_fill): what its RKME gives it, compared per
    # column with the labelled rows' ridge when they hold the column (learn_columns).
    fills = {
        str(c.version_id): fill
        for c in candidates
        if (fill := member_fill(c.rkme["Z"], c.rkme["beta"], c.rkme.get("unit_rms"), plan)) is not None
    }
    compared = learn_columns(alignment.target, plan, labelled, fills) if labelled else []
    choices = {
        key: [c["column"] for c in compared if c["members"][key]["method"] == RIDGE_METHOD] for key in fills
    }
    # The plan's rows (the user's RKME in the space, the assembly's transform, a member whose RKME cannot
    # fill) hold the ridge in every column some member (or the identified learnware) takes from it, so
    # that the labelled table carries its out-of-fold values for them (fill_table); each member's rows
    # then refill the columns its own RKME predicts better (specs.impute.member_rows).
    learned = [
        c for c in compared if c["method"] == RIDGE_METHOD or any(c["column"] in v for v in choices.values())
    ]
    for r in learned:  # in the user's units: their RMS is the column's own (specs.impute.filled_rms)
        rms_missing[mis.tolist().index(r["column"])] = r["rms"]
    plan["ridge"] = learned
    plan["methods"] = {
        name: _column_method(j, learned, choices) for j, name in zip(mis.tolist(), names, strict=True)
    }
    kinds = set(plan["methods"].values())
    plan["method"] = kinds.pop() if len(kinds) == 1 else "per-column"
    plan["compared"] = [
        {k: c[k] for k in ("name", "rows", "error_ridge", "error_rkme", "method")}
        | {"members": {key: m["error_rkme"] for key, m in c["members"].items()}}
        for c in compared
    ]
    # Which candidate members fill from their own RKME, and which columns each takes from the ridge
    # (report; OutputCache.fill reads ``ridge`` back for the member's recipe entry).
    plan["own_rkme"] = [
        _card(c)
        | {"own": str(c.version_id) in fills}
        | ({"ridge": choices[str(c.version_id)]} if str(c.version_id) in fills else {})
        for c in candidates
    ]
    plan["explanation"] = _explanation(plan, spec, obs.size, mmd2)
    return plan


def _column_method(column: int, learned: list[dict[str, Any]], choices: dict[str, list[int]]) -> str:
    """A column's method over the candidate members: the ridge for all, the RKME for all (its own, or
    the identified learnware's for a member whose RKME cannot fill), or ``per-member``."""
    if column not in {r["column"] for r in learned}:
        return RKME_METHOD
    taught = [column in cols for cols in choices.values()]
    return RIDGE_METHOD if all(taught) else PER_MEMBER


def _card(spec: Any) -> dict[str, Any]:
    """The learnware version of a stored RKME, as the report links it."""
    return {
        "version_id": spec.version_id,
        "learnware_id": spec.version.learnware_id,
        "name": spec.version.learnware.name,
        "version": spec.version.number,
    }


def _explanation(plan: dict[str, Any], spec: Any, n_obs: int, mmd2: float) -> str:
    methods, learned = plan["methods"], plan["ridge"]
    taught = [n for n in plan["columns"] if methods[n] == RIDGE_METHOD]
    mixed = [n for n in plan["columns"] if methods[n] == PER_MEMBER]
    rest = [n for n in plan["columns"] if methods[n] == RKME_METHOD]
    parts = []
    if rest or mixed:
        parts.append(
            f"{len(rest) + len(mixed)} column(s) you lack ({', '.join([*rest, *mixed][:8])}) are predicted, "
            f"for each member, from its own RKME given your {n_obs} columns (the conditional mean under its "
            "weighted points: a linear part plus kernel regression, in its units); "
            f"{spec.version.learnware.name} v{spec.version.number}'s RKME, which matches your rows best "
            f"on the shared columns (MMD² {mmd2:.4f}), fills them for any member whose RKME cannot"
        )
    if taught or mixed:
        rows = min(r["rows"] for r in learned)
        parts.append(
            f"{len(taught)} column(s) ({', '.join(taught[:8]) or 'none'}) are learned from your {rows} "
            f"labelled rows that hold them, for every member: ridge regression on your {n_obs} shared "
            "columns, its penalty chosen by generalised cross-validation (it predicted them better there, "
            "out of fold, than each member's own RKME)"
        )
    if mixed:
        parts.append(
            f"{len(mixed)} column(s) ({', '.join(mixed[:8])}) come from that ridge for the members whose own "
            "RKME predicted them worse on your labelled rows, and from their own RKME for the others"
        )
    return "; ".join(parts)


def learn_columns(
    target: list[str],
    plan: dict[str, Any],
    labelled: tuple[list[str], np.ndarray],
    fills: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each missing column the labelled rows hold (with every observed column, in at least
    ``MIN_RIDGE_ROWS`` rows): its ridge fit on the observed columns and the method that predicts it
    better on those rows, for the plan's RKME and for each member's own (``fills``, by version id;
    ``specs.impute_ridge.choose_column``)."""
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
        out.append({"name": name} | choose_column(Xo[ok], y[ok], plan, int(j), fills))
    return out


def public_plan(plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a report shows of a plan (no points): each column's method, whose fill each member gets
    (``filled_by``), and for the columns the labelled rows hold the errors that chose it: the ridge's
    and the identified learnware's RKME's, and per member its own RKME's (``learn_columns``)."""
    if not plan:
        return None
    shown = {k: plan[k] for k in ("columns", "method", "source", "explanation")}
    methods = plan.get("methods") or {c: plan["method"] for c in plan["columns"]}
    fits = {r["name"]: {"alpha": r["alpha"]} for r in plan.get("ridge") or []}
    compared = {c["name"]: c for c in plan.get("compared") or []}
    shown["per_column"] = [
        {"column": c, "method": methods[c]}
        | ({"filled_by": members} if (members := filled_by(plan, c)) else {})
        | fits.get(c, {})
        | ({k: compared[c][k] for k in ("rows", "error_ridge", "error_rkme")} if c in compared else {})
        for c in plan["columns"]
    ]
    return shown


def filled_by(plan: dict[str, Any], column: str) -> list[dict[str, Any]]:
    """Per candidate member (the space's learnwares the plan saw), what fills ``column`` for it:
    ``method`` (its own choice between the labelled rows' ridge and an RKME) and, for the RKME, whose:
    its own (``rkme: "own"``) or the identified learnware's when its own cannot (``"identified"``);
    where the labelled rows hold the column, the two errors compared (``error_ridge``, and
    ``error_rkme``: its own RKME's). Plans stored before per-member fills list none (every member saw
    the identified one's fill); those stored before per-member choices, the plan's method for all."""
    j = int(plan["missing"][plan["columns"].index(column)])
    taught = {int(r["column"]) for r in plan.get("ridge") or []}
    compared = next((c for c in plan.get("compared") or [] if c["name"] == column), None)
    out = []
    for c in plan.get("own_rkme") or []:
        ridge = j in c.get("ridge", taught)  # a member without its own RKME sees the plan's rows
        row = {k: c[k] for k in ("version_id", "learnware_id", "name", "version")} | {
            "rkme": "own" if c["own"] else "identified",
            "method": RIDGE_METHOD if ridge else RKME_METHOD,
        }
        own_error = (
            compared["members"].get(str(c["version_id"])) if compared and "members" in compared else None
        )
        if compared and own_error is not None:
            row |= {"error_ridge": compared["error_ridge"], "error_rkme": own_error}
        out.append(row)
    return out


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
