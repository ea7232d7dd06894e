"""Scores with confidence from repeated cross-validation, and choices that labels cannot make worse.

Every method is scored on the same repeated k-fold splits of the user's labelled rows, so
two methods' per-fold scores are paired. Fold scores of repeated k-fold are correlated
(their training sets overlap), so the naive standard error ``sd / sqrt(J)`` is too small;
the corrected resampled t-test of Nadeau and Bengio (2003, "Inference for the
generalization error") inflates the variance of the mean to ``(1/J + n_test/n_train) * s^2``
with J = repeats x folds. That variance is used for every interval and test here.

* :func:`score_interval` -- a method's mean fold score with its 95 % interval;
* :func:`paired_verdict` -- "better" / "no_difference" / "worse" from the interval of the
  mean per-fold difference;
* :func:`one_se_choice` -- keep a default unless another candidate's mean gain over it
  exceeds the gain's (corrected) standard error (the one-standard-error rule).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
from scipy import stats
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from specs.exceptions import InvalidDataError

Verdict = Literal["better", "no_difference", "worse"]
# How a statement reads a verdict ("the assembly is ... the best single learnware").
VERDICT_WORDS: dict[str, str] = {
    "better": "better than",
    "no_difference": "not detectably different from",
    "worse": "worse than",
}


class ScoreInterval(TypedDict):
    """A method's mean fold score with its 95 % interval [low, high] over ``n`` folds (stored as JSON)."""

    mean: float
    ci95: list[float]
    n: int


LEVEL = 0.95


@dataclass(frozen=True)
class Folds:
    """Repeated k-fold splits: ``splits[r * k + f] = (train, test)`` index arrays."""

    splits: list[tuple[np.ndarray, np.ndarray]]
    k: int
    repeats: int
    n: int

    @property
    def test_share(self) -> float:
        """n_test / n_train of one split (1 / (k - 1) for k equal folds)."""
        return 1.0 / (self.k - 1)


def repeated_folds(y: np.ndarray, *, stratify: bool, k: int = 5, repeats: int = 5, seed: int = 0) -> Folds:
    """Seeded repeated k-fold over n rows, stratified by ``y`` when ``stratify``.

    k is lowered to the largest class count when stratifying (a class rarer than k then
    appears in some test folds only), and never below 2.

    Raises
    ------
    InvalidDataError
        Fewer than 4 rows: no split leaves rows to train and to test on.
    """
    y = np.asarray(y)
    n = int(y.shape[0])
    if n < 4:
        raise InvalidDataError(f"{n} labelled rows are too few to cross-validate (at least 4)")
    if stratify:
        _, codes = np.unique(y, return_inverse=True)
        k = max(2, min(k, int(np.bincount(codes).max()), n // 2))
        splitter: RepeatedKFold | RepeatedStratifiedKFold = RepeatedStratifiedKFold(
            n_splits=k, n_repeats=repeats, random_state=seed
        )
    else:
        k = max(2, min(k, n // 2))
        splitter = RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only m members"
        splits = [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros((n, 1)), y)]
    return Folds(splits, k, repeats, n)


def corrected_se(values: Sequence[float] | np.ndarray, test_share: float) -> float:
    """Nadeau-Bengio standard error of the mean of J correlated fold values:
    ``sqrt((1/J + n_test/n_train) * s^2)`` with s^2 the sample variance (ddof = 1)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] < 2:
        return float("inf")
    return float(np.sqrt((1.0 / v.shape[0] + test_share) * np.var(v, ddof=1)))


def _half_width(values: np.ndarray, test_share: float, level: float) -> float:
    se = corrected_se(values, test_share)
    if se == 0.0:
        return 0.0
    return float(stats.t.ppf(0.5 + level / 2.0, df=values.shape[0] - 1) * se)


def score_interval(
    values: Sequence[float] | np.ndarray,
    test_share: float,
    level: float = LEVEL,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> ScoreInterval:
    """{"mean", "ci95": [low, high], "n"}: the mean fold score and its t interval (corrected SE).

    ``bounds`` is the metric's range (accuracy: [0, 1]; R²: at most 1): the symmetric t interval
    can leave it on few rows, and a score outside its range is no possible value, so the interval
    is cut there (its coverage does not drop: no true score lies beyond the range)."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    h = _half_width(v, test_share, level)
    return {"mean": mean, "ci95": [max(mean - h, bounds[0]), min(mean + h, bounds[1])], "n": int(v.shape[0])}


METRIC_BOUNDS = {"accuracy": (0.0, 1.0), "r2": (-np.inf, 1.0)}


def metric_bounds(metric: str) -> tuple[float, float]:
    """The range of a score: accuracy in [0, 1], R² at most 1, anything else unbounded."""
    return METRIC_BOUNDS.get(metric, (-np.inf, np.inf))


def paired_verdict(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, test_share: float, level: float = LEVEL
) -> tuple[Verdict, ScoreInterval]:
    """Is ``a`` better than ``b`` on the same folds? The verdict and the difference's interval.

    "better" when the whole interval of the mean difference a - b is above 0, "worse" when
    it is below 0, else "no_difference" (identical scores on every fold are no difference).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    interval = score_interval(d, test_share, level)
    low, high = interval["ci95"]
    verdict: Verdict = "better" if low > 0 else "worse" if high < 0 else "no_difference"
    return verdict, interval


def one_se_choice(
    default: str, scores: Mapping[str, Sequence[float] | np.ndarray], test_share: float
) -> tuple[str, dict[str, dict[str, float]]]:
    """The candidate to deliver: ``default`` unless another one's mean gain over it exceeds
    the gain's corrected standard error; among those, the highest mean gain (ties: the
    earlier in ``scores``). Returns the choice and {candidate: {"gain", "se"}} for the report."""
    base = np.asarray(scores[default], dtype=np.float64)
    gains: dict[str, dict[str, float]] = {}
    best, best_gain = default, 0.0
    for name, values in scores.items():
        if name == default:
            continue
        d = np.asarray(values, dtype=np.float64) - base
        gain, se = float(d.mean()), corrected_se(d, test_share)
        gains[name] = {"gain": gain, "se": se}
        if gain > se and gain > best_gain:
            best, best_gain = name, gain
    return best, gains


def proportion_interval(successes: int, n: int, level: float = LEVEL) -> list[float]:
    """Wilson score interval of a proportion (used where no folds exist, e.g. a single-class sample)."""
    if n <= 0:
        return [0.0, 1.0]
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]
