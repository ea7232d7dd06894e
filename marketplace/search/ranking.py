"""Mixture proposal over re-ranked candidates (uses ``specs.mixture``; no ORM).

A mixture is proposed only when it explains the user's data significantly better than
the best single learnware: ``specs.mixture.mixture_is_significant`` compares the MMD^2
gain with the sampling noise expected at the user's n. Components whose weight is
below ``MIN_WEIGHT`` are dropped and the weights re-solved, and the test is applied
to the mixture that is actually shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.search.index import Hits, SpaceIndex
from specs import greedy_mixture, mixture_is_significant, mixture_weights, sampling_noise_mmd2, self_term

MIXTURE_POOL = 20  # best re-ranked candidates the greedy search may combine
MIN_WEIGHT = 0.05  # a component below this explains < 5 % of the data: noise, not a source


@dataclass(frozen=True)
class MixtureProposal:
    proposed: bool
    ids: np.ndarray  # selected version ids (empty when not proposed)
    weights: np.ndarray
    mmd2: float  # of the mixture (= best single when not proposed)
    best_single_id: int
    best_single_mmd2: float
    noise_mmd2: float | None
    reason: str


def propose_mixture(
    index: SpaceIndex, Z: np.ndarray, beta: np.ndarray, hits: Hits, *, n_samples: int | None, max_components: int = 3
) -> MixtureProposal:
    """Greedy mixture over the top ``MIXTURE_POOL`` hits, kept only if significant."""
    best_id, best = int(hits.ids[0]), float(hits.mmd2[0])
    if n_samples is None:
        return MixtureProposal(False, np.empty(0, np.int64), np.empty(0), best, best_id, best, None,
                               "no mixture: the RKME does not say how many rows it summarises (n_samples)")
    pool = hits.ids[:MIXTURE_POOL]
    Zs, betas, _ = index.store.gather(pool)
    gamma = index.gamma
    result = greedy_mixture(Z, beta, Zs, betas, gamma, max_components=max_components, n_samples=n_samples)
    noise = sampling_noise_mmd2(self_term(Z, beta, gamma), n_samples)
    chosen, weights, mmd2 = result.indices, result.weights, result.mmd2
    if len(chosen) > 1 and (weights < MIN_WEIGHT).any():
        chosen = chosen[weights >= MIN_WEIGHT]
        weights, mmd2 = mixture_weights(Z, beta, Zs[chosen], betas[chosen], gamma) if len(chosen) > 1 else (np.ones(1), best)
    significant = len(chosen) > 1 and mixture_is_significant(best, mmd2, self_term=self_term(Z, beta, gamma), n_samples=n_samples)
    if not significant:
        reason = (f"no mixture: the best of {len(chosen)} components lowers MMD² by {best - mmd2:.3g}, "
                  f"within 2× the sampling noise {noise:.3g} at n={n_samples}")
        return MixtureProposal(False, np.empty(0, np.int64), np.empty(0), best, best_id, best, noise, reason)
    order = np.argsort(-weights)
    ids = pool[chosen][order]
    reason = (f"mixture of {len(ids)} lowers MMD² from {best:.3g} (best single) to {mmd2:.3g}; "
              f"sampling noise at n={n_samples} is {noise:.3g}")
    return MixtureProposal(True, ids, weights[order], float(mmd2), best_id, best, noise, reason)
