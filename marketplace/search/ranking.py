"""Mixture proposal over re-ranked candidates (uses ``specs.mixture_bootstrap``; no ORM).

A mixture is proposed only when a calibrated test says it explains the user's data better
than the best single learnware at level ``ALPHA`` (``specs.mixture_bootstrap``: a bootstrap
of the user's noise around the best single, false-positive rate measured in
``tests/specs/test_mixture_bootstrap.py``). A mixture that is plausible but not significant
(``p <= SUGGEST_P``) is returned as a suggestion with its evidence instead of being dropped.
Components whose weight is below ``MIN_WEIGHT`` are dropped and the weights re-solved inside
the tested procedure, so the test applies to the mixture that is actually shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.search.index import Hits, SpaceIndex
from specs import mixture_bootstrap_test, sampling_noise_mmd2, self_term

MIXTURE_POOL = 20  # best re-ranked candidates the greedy search may combine
MIN_WEIGHT = 0.05  # a component below this explains < 5 % of the data: noise, not a source
ALPHA = 0.05  # false-positive rate of a proposed mixture on single-domain data
DRAWS = 199  # bootstrap draws: p-values on a 1/200 grid


@dataclass(frozen=True)
class MixtureProposal:
    proposed: bool
    ids: np.ndarray  # selected version ids, decreasing weight (empty when neither proposed nor suggested)
    weights: np.ndarray
    mmd2: float  # of the mixture (= best single when not proposed)
    best_single_id: int
    best_single_mmd2: float
    noise_mmd2: float | None
    reason: str
    p_value: float | None = None  # bootstrap p-value of the mixture's MMD² gain
    gain_quantile: float | None = None  # the gain noise alone reaches with probability ALPHA
    shares: np.ndarray | None = None  # each component's share of the gain (leave-one-out)
    suggested: bool = False  # plausible (p <= SUGGEST_P) but not significant: shown as a suggestion

    @property
    def gain(self) -> float:
        return max(self.best_single_mmd2 - self.mmd2, 0.0)


def propose_mixture(
    index: SpaceIndex,
    Z: np.ndarray,
    beta: np.ndarray,
    hits: Hits,
    *,
    n_samples: int | None,
    max_components: int = 3,
    rows: np.ndarray | None = None,
) -> MixtureProposal:
    """Greedy mixture over the top ``MIXTURE_POOL`` hits, tested against noise.

    ``rows`` (the user's rows in the space, when the caller has them) calibrate the test on the
    data's own spread; without them the null users are drawn from the best single's reduced set.
    """
    best_id, best = int(hits.ids[0]), float(hits.mmd2[0])
    empty = np.empty(0, np.int64)
    if n_samples is None:
        return MixtureProposal(
            False,
            empty,
            np.empty(0),
            best,
            best_id,
            best,
            None,
            "no mixture: the RKME does not say how many rows it summarises (n_samples)",
        )
    pool = hits.ids[:MIXTURE_POOL]
    Zs, betas, _ = index.store.gather(pool)
    gamma = index.gamma
    noise = sampling_noise_mmd2(self_term(Z, beta, gamma), n_samples)
    ev = mixture_bootstrap_test(
        Z,
        beta,
        Zs,
        betas,
        gamma,
        n_samples=n_samples,
        rows=rows,
        max_components=max_components,
        min_weight=MIN_WEIGHT,
        n_draws=DRAWS,
        alpha=ALPHA,
    )
    mix = ev.mixture
    ids = pool[mix.indices]
    k = len(ids)
    evidence = (
        f"lowers MMD² from {best:.3g} (best single) to {mix.mmd2:.3g}; noise alone reaches a gain of "
        f"{ev.null_quantile:.3g} in {ALPHA:.0%} of {ev.n_draws} bootstrap draws at n={n_samples}, "
        f"p = {ev.p_value:.3f}"
    )
    if ev.significant:
        return MixtureProposal(
            True,
            ids,
            mix.weights,
            float(mix.mmd2),
            best_id,
            best,
            noise,
            f"mixture of {k} {evidence}",
            ev.p_value,
            ev.null_quantile,
            ev.component_shares,
        )
    if ev.plausible:
        return MixtureProposal(
            False,
            ids,
            mix.weights,
            float(mix.mmd2),
            best_id,
            best,
            noise,
            f"no mixture proposed; suggestion: a mixture of {k} {evidence} (not significant at {ALPHA:.0%})",
            ev.p_value,
            ev.null_quantile,
            ev.component_shares,
            suggested=True,
        )
    if k < 2:
        reason = (
            "no mixture: no second learnware takes a weight of at least 5 % (the best single explains "
            "your data)"
        )
    else:
        reason = f"no mixture: the best mixture of {k} {evidence}, within noise"
    return MixtureProposal(
        False,
        empty,
        np.empty(0),
        best,
        best_id,
        best,
        noise,
        reason,
        ev.p_value if k > 1 else None,
        None if k < 2 else ev.null_quantile,
    )
