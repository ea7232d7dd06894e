"""Values for columns a user lacks, learned from the user's own labelled rows (when those hold them).

A user whose labelled file holds a column their unlabelled rows lack has examples of that
column given the columns they share: a ridge regression from the shared columns fitted on
those rows predicts it for the unlabelled rows, in the user's own units. Ridge (not least
squares) because the labelled sample is small (tens of rows) and the shared columns may be
collinear; its penalty λ is chosen by generalised cross-validation (Golub, Heath & Wahba 1979),

    GCV(λ) = n ||y - ŷ_λ||² / (n - df_λ)²,   df_λ = 1 + tr H_λ,   H_λ = X_c (X_c'X_c + λI)^-1 X_c',

the mean squared residual inflated by the degrees of freedom spent (the unpenalised intercept
is one of them; X_c, y_c are the centred columns). Through the SVD ``X_c = U S V'``, with
``d_j = s_j² / (s_j² + λ)`` and ``u = U'y_c``: ``||y - ŷ||² = ||y_c||² - sum (1 - (1 - d_j)²) u_j²``
and ``tr H = sum d_j``, so every λ costs O(d) once the SVD is known.

The features are put on unit scale (divided by their standard deviation) before fitting, so λ
means the same for every column whatever its units; the returned coefficients are in the
given units (``y ≈ X @ coef + intercept``).

Scores on the labelled rows themselves (ranking, assembly, evaluation, the imputation cost) must not
see a fill that learned from the row it fills: with tens of rows the ridge follows each row's own
value of the column (its noise too), and where that column carries the label the member would look
better on those rows than on any new one. :func:`fill_labelled` gives each labelled row its value
from a ridge fitted without it (:func:`out_of_fold`); new rows (the unlabelled data, the package)
get the ridge fitted on every labelled row (the plan's ``ridge``), which never saw them either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from specs.exceptions import InvalidParameterError
from specs.impute import impute_raw, rkme_fill
from specs.units import unit_rms

RKME_METHOD = "rkme-kernel-regression"  # specs.impute: the conditional mean under a learnware's RKME
RIDGE_METHOD = "labelled-rows-ridge"  # this module: learned from the user's labelled rows
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 25))
OOF_FOLDS = 5  # folds of the out-of-fold fills and errors (20 rows, the fewest learned from, give 4 a fold)


@dataclass(frozen=True)
class RidgeFit:
    coef: np.ndarray  # (d,) or (d, t) in the given units of X
    intercept: np.ndarray | float
    alpha: float  # the chosen λ (on unit-scale features)
    gcv: float  # its GCV score (mean squared leave-one-out-like error)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept

    def to_json(self) -> dict[str, object]:
        return {
            "coef": np.asarray(self.coef).tolist(),
            "intercept": np.asarray(self.intercept).tolist(),
            "alpha": self.alpha,
        }


def gcv_scores(Xc: np.ndarray, yc: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """GCV(λ) for each λ (module docstring), ``Xc`` and ``yc`` (n,) centred."""
    n = Xc.shape[0]
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    u = U.T @ yc
    total = float(yc @ yc)
    out = np.empty(len(alphas))
    for i, a in enumerate(alphas):
        d = s * s / (s * s + float(a))
        rss = total - float(np.sum((1.0 - (1.0 - d) ** 2) * u * u))
        out[i] = n * max(rss, 0.0) / (n - 1.0 - float(d.sum())) ** 2
    return out


def ridge_gcv(X: np.ndarray, y: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS) -> RidgeFit:
    """Ridge of ``y`` (n,) on ``X`` (n, d) with an unpenalised intercept, λ chosen from ``alphas``
    by GCV on unit-scale features (module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise InvalidParameterError(f"X {X.shape} and y {y.shape} do not pair up")
    if X.shape[0] < 3 or not len(alphas) or min(alphas) <= 0:
        raise InvalidParameterError("ridge_gcv needs at least 3 rows and positive alphas")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InvalidParameterError("ridge_gcv needs finite rows")
    mx, my = X.mean(axis=0), float(y.mean())
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)  # a constant column carries nothing; its coefficient stays 0
    Xc, yc = (X - mx) / sd, y - my
    scores = gcv_scores(Xc, yc, alphas)
    best = int(np.argmin(scores))
    alpha = float(alphas[best])
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    # (Xc'Xc + λI)^-1 Xc'y = V diag(1 / (s² + λ)) V'Xc'y  (directions outside Xc's rows get 0)
    beta_std = Vt.T @ ((Vt @ (Xc.T @ yc)) / (s * s + alpha))
    coef = beta_std / sd
    return RidgeFit(coef=coef, intercept=my - float(mx @ coef), alpha=alpha, gcv=float(scores[best]))


def out_of_fold(X: np.ndarray, y: np.ndarray, *, k: int = OOF_FOLDS, seed: int = 0) -> np.ndarray:
    """Each row's prediction from a :func:`ridge_gcv` fitted on the other ``k - 1`` seeded folds: how
    the fit does on rows it never saw (judged on its own rows it would look better than it is)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64).reshape(-1)
    n = X.shape[0]
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    out = np.empty(n)
    for f in range(k):
        test = fold == f
        out[test] = ridge_gcv(X[~test], y[~test]).predict(X[test])
    return out


def fill_labelled(
    rows: np.ndarray, truth: np.ndarray, plan: dict, *, k: int = OOF_FOLDS, seed: int = 0
) -> np.ndarray:
    """The labelled ``rows`` (the space's order, raw, NaN in the plan's missing columns) filled as the
    ``plan`` fills any row (``specs.impute.impute_raw``), except each column the plan learned from
    these rows (``plan["ridge"]``): there every row that taught it (its ``truth``, the same rows with
    the true values, holds the column and the observed ones) gets the :func:`out_of_fold` prediction,
    from a ridge fitted on the other folds (module docstring). A row that did not teach it keeps the
    plan's value: that ridge never saw it. RKME-filled columns are the plan's: the RKME never saw
    the user's rows. Refused when ``truth`` is not the rows the ridge was fitted on (another count)."""
    filled = impute_raw(rows, plan)
    truth = np.asarray(truth, dtype=np.float64)
    obs = np.asarray(plan["observed"], dtype=np.int64)
    for r in plan.get("ridge") or []:
        j = int(r["column"])
        Xo, y = truth[:, obs], truth[:, j]
        taught = np.isfinite(y) & np.isfinite(Xo).all(axis=1)
        if not taught.any():
            continue  # a table without the column: no row of it taught the ridge
        if int(taught.sum()) != int(r["rows"]):
            raise InvalidParameterError(
                f"column {j} was learned from {r['rows']} rows, these rows hold {int(taught.sum())}"
            )
        filled[taught, j] = out_of_fold(Xo[taught], y[taught], k=k, seed=seed)
    return filled


def rkme_error(Xo: np.ndarray, y: np.ndarray, plan: dict, column: int, source: dict) -> float:
    """The mean squared error, relative to the column's mean square, of ``source``'s RKME fill of the
    missing ``column`` (``specs.impute.rkme_fill``: ``source`` the plan itself or a member's own fill)
    on rows ``Xo`` (raw, the plan's observed columns) whose true values are ``y``. In a unit-free plan
    the RKME's value (its developer's units) is first put in the user's by the unit-free step (divided
    by its developer's RMS, times the column's RMS in these rows), as a member would see the two."""
    Xo, y = np.asarray(Xo, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rows = np.full((y.shape[0], len(plan["mean"])), np.nan)
    rows[:, np.asarray(plan["observed"], dtype=np.int64)] = Xo
    rms_y = float(unit_rms(y.reshape(-1, 1))[0])
    rkme = rkme_fill(rows, plan, source, cols=np.asarray([column]))[:, column]
    if plan["unit_free"]:
        rkme = rkme / float(source["rms_missing"][list(plan["missing"]).index(column)]) * rms_y
    return float(np.mean((rkme - y) ** 2)) / rms_y**2


def choose_column(
    Xo: np.ndarray, y: np.ndarray, plan: dict, column: int, fills: Mapping[str, dict] | None = None
) -> dict:
    """The ridge fit of the missing ``column`` on rows ``Xo`` (raw, the plan's observed columns) with
    its true values ``y``, and which predicts it better on those rows: the ridge or an RKME.

    Both errors are on rows the predictor did not learn from (the ridge's out of fold; an RKME never
    saw them), relative to the column's mean square (:func:`rkme_error`). The ridge is the user's (one
    fit, shared by every member); the RKME is each member's own: ``method``/``error_rkme`` compare it
    with the plan's (the identified learnware's) RKME, and ``members`` (one entry per key of
    ``fills``: a member's own fill, ``specs.impute.member_fill``) with each member's, the smaller
    error winning for that member. The returned row is what a plan's ``ridge`` entry holds."""
    Xo, y = np.asarray(Xo, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rms_y = float(unit_rms(y.reshape(-1, 1))[0])
    error_ridge = float(np.mean((out_of_fold(Xo, y) - y) ** 2)) / rms_y**2

    def verdict(source: dict) -> dict:
        error = rkme_error(Xo, y, plan, column, source)
        return {"error_rkme": error, "method": RIDGE_METHOD if error_ridge < error else RKME_METHOD}

    fit = ridge_gcv(Xo, y)
    return {
        "column": int(column),
        **fit.to_json(),
        "rows": int(y.shape[0]),
        "rms": rms_y,
        "error_ridge": error_ridge,
        **verdict(plan),
        "members": {key: verdict(fill) for key, fill in (fills or {}).items()},
    }
