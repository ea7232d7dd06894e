"""A calibrated test of "the user's data is a mixture", with a set false-positive rate.

The greedy mixture always lowers MMD^2 a little: with n rows, the user's embedding is
off its distribution's by sampling noise, and other candidates can absorb part of that
noise. The question is whether the observed gain is larger than what noise alone gives.

Null hypothesis H0: the user's n rows are draws from the best single candidate's
distribution, and that candidate's specification is itself an estimate from
``reference_n`` rows. Parametric bootstrap with the best single's reduced set
``(Z_b, beta_b)`` as the plug-in distribution: a null user is n draws from it, i.e. a
multinomial over the reduced points with probabilities ``p ~ beta_b+``. Its embedding
lives on the same points, so every inner product it needs is a weighted sum of kernel
columns computed once (``K(Z_b, Z_b)`` and ``K(Z_b, Z_j) beta_j``): a draw costs a
multinomial and the greedy search on an m x m Gram matrix, not a kernel evaluation.
The multinomial reproduces the noise's size exactly, ``E||u - p||^2 = (1 - p'Kp)/n``
(the formula of ``sampling_noise_mmd2``).

The statistic is the gain of the whole selection procedure (greedy search + pruning of
components under ``min_weight`` + re-solved weights), so the search over candidates is
accounted for. ``p = (1 + #{null gain >= observed}) / (B + 1)``: a valid p-value under
H0 (the observed gain is exchangeable with B null gains), so rejecting at ``p <= alpha``
has false-positive rate ``<= alpha`` up to the plug-in error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specs._validation import check_positive_int
from specs.exceptions import InvalidParameterError
from specs.kernels import _rbf
from specs.mixture import MixtureResult, _prepare, gram_terms, greedy_on_gram, sampling_noise_mmd2, simplex_qp

DEFAULT_DRAWS = 199  # p-values on a 1/200 grid; ~0.2 s for 20 candidates
DEFAULT_ALPHA = 0.05
SUGGEST_P = 0.25  # a mixture with p in (alpha, SUGGEST_P] is shown as a suggestion, not dropped


@dataclass(frozen=True)
class MixtureEvidence:
    """Outcome of :func:`mixture_bootstrap_test`.

    Attributes
    ----------
    mixture : MixtureResult
        The selected mixture after pruning (one component when nothing survives).
    p_value : float
        Bootstrap p-value of its gain under H0 (1.0 for a single component).
    null_quantile : float
        The (1 - alpha) quantile of the null gains: the gain a mixture had to beat.
    alpha : float
    n_draws : int
    component_shares : ndarray (k,)
        Share of the gain each component carries: the MMD^2 the mixture loses when that
        component is removed (weights re-solved), normalised to sum to 1.
    """

    mixture: MixtureResult
    p_value: float
    null_quantile: float
    alpha: float
    n_draws: int
    component_shares: np.ndarray

    @property
    def significant(self) -> bool:
        return len(self.mixture.indices) > 1 and self.p_value <= self.alpha

    @property
    def plausible(self) -> bool:
        """Several components and a p-value that does not rule them out: worth a suggestion."""
        return len(self.mixture.indices) > 1 and not self.significant and self.p_value <= SUGGEST_P


def select_mixture(
    G: np.ndarray,
    b: np.ndarray,
    user: float,
    *,
    max_components: int,
    min_weight: float,
    min_gain: float = 0.0,
) -> MixtureResult:
    """Greedy search (a round must gain more than ``min_gain``), then components under
    ``min_weight`` dropped and the weights re-solved. Components come out in decreasing weight.
    """
    res = greedy_on_gram(G, b, user, max_components=max_components, min_gain=min_gain)
    chosen, weights = res.indices, res.weights
    if len(chosen) > 1 and (weights < min_weight).any():
        chosen = chosen[weights >= min_weight]
    if len(chosen) == 1:
        j = int(chosen[0])
        return MixtureResult(
            chosen,
            np.ones(1),
            res.best_single_mmd2
            if j == res.best_single_index
            else max(user - 2.0 * float(b[j]) + float(G[j, j]), 0.0),
            res.best_single_index,
            res.best_single_mmd2,
            res.history[:1],
        )
    weights = simplex_qp(G[np.ix_(chosen, chosen)], b[chosen])
    order = np.argsort(-weights, kind="stable")
    chosen, weights = chosen[order], weights[order]
    mmd2 = _mixture_mmd2(G, b, user, chosen, weights)
    return MixtureResult(chosen, weights, mmd2, res.best_single_index, res.best_single_mmd2, res.history)


def _mixture_mmd2(G: np.ndarray, b: np.ndarray, user: float, idx: np.ndarray, w: np.ndarray) -> float:
    return max(user - 2.0 * float(b[idx] @ w) + float(w @ G[np.ix_(idx, idx)] @ w), 0.0)


def component_shares(G: np.ndarray, b: np.ndarray, user: float, mixture: MixtureResult) -> np.ndarray:
    """Leave-one-out loss of each component, normalised (1.0 for a single component)."""
    idx = mixture.indices
    if len(idx) == 1:
        return np.ones(1)
    losses = np.empty(len(idx))
    for i in range(len(idx)):
        rest = np.delete(idx, i)
        w = simplex_qp(G[np.ix_(rest, rest)], b[rest])
        losses[i] = max(_mixture_mmd2(G, b, user, rest, w) - mixture.mmd2, 0.0)
    total = losses.sum()
    return losses / total if total > 0 else np.full(len(idx), 1.0 / len(idx))


def mixture_bootstrap_test(
    Z: object,
    beta: object,
    cand_Zs: object,
    cand_betas: object,
    gamma: float,
    *,
    n_samples: int,
    rows: object | None = None,
    reference_n: int | None = None,
    max_components: int = 3,
    min_weight: float = 0.05,
    n_draws: int = DEFAULT_DRAWS,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> MixtureEvidence:
    """Select a mixture for the user's spec and test its gain by a bootstrap under H0.

    Parameters
    ----------
    Z, beta : user's reduced set, (K, d) and (K,)
    cand_Zs, cand_betas : (m, Kc, d) and (m, Kc), padded with zero weights
    gamma : float
    n_samples : int
        Rows the user's spec summarises (the null users' size).
    rows : array-like (n, d), optional
        The user's rows in the spec's space. When given, the null noise is the user's own
        centred bootstrap noise added to the best single's embedding (the real spread of
        the data, see :func:`row_noise_problems`); otherwise it is drawn from the best
        single's reduced set (:func:`reduced_set_problems`, narrower: less calibrated).
    reference_n : int, optional
        Rows behind the best single's spec; ``None`` treats that spec as exact.
    max_components, min_weight : the selection procedure (see :func:`select_mixture`)
    n_draws : int
        Bootstrap draws B.
    alpha : float
        Level of the test, in (0, 1).
    seed : int
        The draws are deterministic given the seed (a search returns the same answer twice).

    Returns
    -------
    MixtureEvidence
    """
    Z, beta, Zs, betas, gamma = _prepare(Z, beta, cand_Zs, cand_betas, gamma)
    n = check_positive_int(n_samples, "n_samples")
    B = check_positive_int(n_draws, "n_draws")
    check_positive_int(max_components, "max_components")
    if not 0.0 < alpha < 1.0:
        raise InvalidParameterError(f"alpha must be in (0, 1), got {alpha!r}")
    if reference_n is not None:
        check_positive_int(reference_n, "reference_n")
    G, b, user = gram_terms(Z, beta, Zs, betas, gamma)
    # A round must gain more than the user's expected sampling noise: a component that explains
    # less is not a source even when the whole mixture is significant. The same constant is used
    # in every null draw (it is part of the tested procedure).
    min_gain = sampling_noise_mmd2(user, n)
    observed = select_mixture(
        G, b, user, max_components=max_components, min_weight=min_weight, min_gain=min_gain
    )
    shares = component_shares(G, b, user, observed)
    if len(observed.indices) == 1:
        return MixtureEvidence(observed, 1.0, float("nan"), alpha, 0, shares)
    best = observed.best_single_index
    X = None
    if rows is not None:
        X = np.asarray(rows, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != Z.shape[1] or X.shape[0] < 2:
            raise InvalidParameterError(f"rows must be (n >= 2, {Z.shape[1]}), got {X.shape}")

    def null_fits(scale: float) -> list[MixtureResult]:
        rng = np.random.default_rng(seed)  # the same draws at every scale
        if X is not None:
            problems = row_noise_problems(
                G,
                X,
                Zs,
                betas,
                gamma,
                best=best,
                n_samples=n,
                reference_n=reference_n,
                n_draws=B,
                rng=rng,
                scale=scale,
            )
        else:
            problems = reduced_set_problems(
                G,
                Zs,
                betas,
                gamma,
                best=best,
                n_samples=n,
                reference_n=reference_n,
                n_draws=B,
                rng=rng,
                scale=scale,
            )
        return [
            select_mixture(
                Gt, bt, ut, max_components=max_components, min_weight=min_weight, min_gain=min_gain
            )
            for Gt, bt, ut in problems
        ]

    fits = null_fits(1.0)
    # Specs are reduced sets and the learnwares' own samples are finite: the real mismatch left
    # after the best mixture is larger than the user's sampling noise alone. Inflate the noise
    # until the null leaves as much unexplained MMD^2 as the observation does (never deflate).
    inflation = observed.mmd2 / max(float(np.mean([f.mmd2 for f in fits])), 1e-300)
    if inflation > 1.0:
        fits = null_fits(float(np.sqrt(inflation)))
    null = np.array([f.gain for f in fits])
    p_value = (1.0 + float((null >= observed.gain).sum())) / (B + 1.0)
    return MixtureEvidence(observed, p_value, float(np.quantile(null, 1.0 - alpha)), alpha, B, shares)


Problem = tuple[np.ndarray, np.ndarray, float]  # (G, b, <u,u>) of one null draw
MAX_NOISE_ROWS = 1000  # rows the centred bootstrap resamples (an n x n kernel matrix)


def row_noise_problems(
    G: np.ndarray,
    X: np.ndarray,
    Zs: np.ndarray,
    betas: np.ndarray,
    gamma: float,
    *,
    best: int,
    n_samples: int,
    reference_n: int | None,
    n_draws: int,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> list[Problem]:
    """Null users ``c_best + scale * eps``, ``eps`` the user's centred bootstrap noise at size n.

    ``eps = u* - u_hat`` (a resample of the rows minus their mean) has the distribution of
    ``u_hat - u`` whatever the rows' source, so H0 only enters through the centre
    ``c_best``. With ``reference_n`` the best single's spec is also perturbed, by an
    independent noise scaled to ``reference_n`` rows. At most ``MAX_NOISE_ROWS`` rows
    are resampled; the noise is rescaled from their number to n.
    """
    if X.shape[0] > MAX_NOISE_ROWS:
        X = X[rng.choice(X.shape[0], MAX_NOISE_ROWS, replace=False)]
    ns = X.shape[0]
    Kxx = _rbf(X, X, gamma)
    A = np.stack([_rbf(X, Zs[j], gamma) @ betas[j] for j in range(Zs.shape[0])], axis=1)  # (ns, m)

    def noise(size: int) -> np.ndarray:  # (B, ns) signed row weights of eps at `size` rows
        counts = rng.multinomial(ns, np.full(ns, 1.0 / ns), size=n_draws) / ns
        return scale * np.sqrt(ns / size) * (counts - 1.0 / ns)

    E1 = noise(n_samples)
    a1 = E1 @ A  # <eps1, c_j>
    k11 = np.einsum("bk,kl,bl->b", E1, Kxx, E1)
    gbb = G[best, best]
    # u = c_best + eps1: <u, c_j> = G[best, j] + <eps1, c_j>,
    # <u, u> = G[best, best] + 2 <eps1, c_best> + |eps1|^2.
    bs, users = G[best] + a1, gbb + 2.0 * a1[:, best] + k11
    reference = None
    if reference_n is not None:  # c'_best = c_best + eps2, the same algebra
        E2 = noise(reference_n)
        a2, k22, k12 = E2 @ A, np.einsum("bk,kl,bl->b", E2, Kxx, E2), np.einsum("bk,kl,bl->b", E1, Kxx, E2)
        reference = (G[best] + a2, gbb + 2.0 * a2[:, best] + k22, gbb + a1[:, best] + a2[:, best] + k12)
    return _null_problems(G, best, bs, users, reference)


def reduced_set_problems(
    G: np.ndarray,
    Zs: np.ndarray,
    betas: np.ndarray,
    gamma: float,
    *,
    best: int,
    n_samples: int,
    reference_n: int | None,
    n_draws: int,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> list[Problem]:
    """Null users drawn from the best single's reduced set (multinomial over its points),
    their deviation from it multiplied by ``scale``."""
    keep = betas[best] > 0
    Zb, p = Zs[best][keep], betas[best][keep] / betas[best][keep].sum()
    Kbb = _rbf(Zb, Zb, gamma)
    C = np.stack([_rbf(Zb, Zs[j], gamma) @ betas[j] for j in range(Zs.shape[0])], axis=1)  # (Kb, m)
    U = p + scale * (rng.multinomial(n_samples, p, size=n_draws) / n_samples - p)
    bs, users = U @ C, np.einsum("bk,kl,bl->b", U, Kbb, U)
    reference = None
    if reference_n is not None:
        V = rng.multinomial(reference_n, p, size=n_draws) / reference_n
        reference = (V @ C, np.einsum("bk,kl,bl->b", V, Kbb, V), np.einsum("bk,kl,bl->b", U, Kbb, V))
    return _null_problems(G, best, bs, users, reference)


def _null_problems(
    G: np.ndarray,
    best: int,
    bs: np.ndarray,
    users: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> list[Problem]:
    """One mixture problem per null draw ``t``: the user's inner products with the specs ``bs[t]`` (m,)
    and with itself ``users[t]``; with ``reference`` = (rows (B, m), selfs (B,), crosses (B,)), the best
    single's spec is replaced by its perturbed copy: its row and column of G become ``rows[t]``, its
    diagonal ``selfs[t]`` and its inner product with the user ``crosses[t]``."""
    out = []
    for t in range(users.shape[0]):
        Gt, bt = G, bs[t]
        if reference is not None:
            rows, selfs, crosses = reference
            Gt = G.copy()
            Gt[best, :] = Gt[:, best] = rows[t]
            Gt[best, best] = selfs[t]
            bt = bt.copy()
            bt[best] = crosses[t]
        out.append((Gt, bt, float(users[t])))
    return out
