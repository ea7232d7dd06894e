from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from specs.exceptions import DimensionMismatchError, InvalidParameterError
from specs.mixture import (
    best_pair,
    greedy_mixture,
    greedy_on_gram,
    mixture_weights,
    sampling_noise_mmd2,
    simplex_qp,
)
from specs.mmd import mmd_squared, mmd_squared_batch
from specs.rkme import rkme_fit

CENTRES = np.array([[0, 0], [3, 0], [0, 3], [3, 3], [-3, 0], [0, -3]], dtype=float)
GAMMA = 0.25


def brute_simplex_qp(G, b):
    """Enumerate every support, solve its equality-constrained QP, keep the best feasible."""
    m, best = len(b), (np.inf, None)
    for k in range(1, m + 1):
        for S in itertools.combinations(range(m), k):
            S = list(S)
            kkt = np.block([[G[np.ix_(S, S)], np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
            w_S = np.linalg.lstsq(kkt, np.append(b[S], 1.0), rcond=None)[0][:k]
            if (w_S < -1e-12).any():
                continue
            w = np.zeros(m)
            w[S] = w_S
            value = w @ G @ w - 2 * b @ w
            if value < best[0] - 1e-15:
                best = (value, w)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_simplex_qp_matches_support_enumeration_and_kkt(seed):
    r = np.random.default_rng(seed)
    A = r.normal(size=(6, 3 if seed % 2 else 8))  # rank-deficient G for odd seeds
    G, b = A @ A.T, r.normal(size=6)
    w = simplex_qp(G, b)
    value, _ = brute_simplex_qp(G, b)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert w @ G @ w - 2 * b @ w == pytest.approx(value, abs=1e-9)
    h = G @ w - b  # KKT: equal on the support, not smaller off it
    on = w > 1e-10
    assert_allclose(h[on], h[on].mean(), atol=1e-8)
    assert (h[~on] >= h[on].mean() - 1e-8).all()


def candidates(rng, n=400, centres=CENTRES, K=None):
    """Candidates as exact empirical embeddings (Z = samples, uniform beta) or RKMEs."""
    Zs, betas = [], []
    for c in centres:
        X = rng.normal(size=(n, 2)) + c
        if K is None:
            Zs.append(X)
            betas.append(np.full(n, 1 / n))
        else:
            spec = rkme_fit(X, K=K, gamma=GAMMA, random_state=0)
            Zs.append(spec.Z_)
            betas.append(spec.beta_)
    return np.stack(Zs), np.stack(betas)


def test_exact_mixture_of_candidates_is_recovered(rng):
    Zs, betas = candidates(rng, n=30)
    true = np.array([0.5, 0.0, 0.3, 0.0, 0.2, 0.0])
    Zu = Zs.reshape(-1, 2)
    bu = (betas * true[:, None]).ravel()
    w, mmd2 = mixture_weights(Zu, bu, Zs, betas, GAMMA)
    assert_allclose(w, true, atol=1e-6)
    assert mmd2 == pytest.approx(0.0, abs=1e-10)
    res = greedy_mixture(Zu, bu, Zs, betas, GAMMA, max_components=6)
    assert set(res.indices.tolist()) == {0, 2, 4}
    assert_allclose(res.weights[np.argsort(res.indices)], [0.5, 0.3, 0.2], atol=1e-6)


def test_sampled_mixture_weights_within_tolerance_and_never_worse_than_single(rng):
    Zs, betas = candidates(rng, n=800, K=40)
    parts = [rng.normal(size=(k, 2)) + CENTRES[i] for i, k in ((1, 1500), (3, 900), (5, 600))]
    user = rkme_fit(np.vstack(parts), K=60, gamma=GAMMA, random_state=0)
    w, mmd2 = mixture_weights(user.Z_, user.beta_, Zs, betas, GAMMA)
    assert_allclose(w, [0, 0.5, 0, 0.3, 0, 0.2], atol=0.05)
    singles = mmd_squared_batch(user.Z_, user.beta_, Zs, betas, GAMMA)
    assert mmd2 <= singles.min() + 1e-12
    mixed = (betas * w[:, None]).ravel()
    assert mmd2 == pytest.approx(mmd_squared(user.Z_, user.beta_, Zs.reshape(-1, 2), mixed, GAMMA), rel=1e-9)
    res = greedy_mixture(user.Z_, user.beta_, Zs, betas, GAMMA, max_components=3)
    assert set(res.indices.tolist()) == {1, 3, 5}
    assert res.gain == pytest.approx(res.best_single_mmd2 - res.mmd2)
    assert res.best_single_index == int(np.argmin(singles))
    assert res.best_single_mmd2 == pytest.approx(singles.min(), rel=1e-9)
    assert all(a >= b for a, b in zip(res.history, res.history[1:], strict=False))


def test_sampling_noise_matches_simulated_empirical_embedding_error():
    # E MMD^2(P_hat_n, P) against a large-sample stand-in for P.
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(4000, 2))
    norm2 = float(np.exp(-GAMMA * cdist(ref, ref, "sqeuclidean")).mean())
    n, values = 50, []
    for _ in range(200):
        X = rng.normal(size=(n, 2))
        values.append(
            mmd_squared_batch(X, np.full(n, 1 / n), ref[None], np.full((1, 4000), 1 / 4000), GAMMA, [norm2])[
                0
            ]
        )
    expected = sampling_noise_mmd2(norm2, n) + sampling_noise_mmd2(norm2, 4000)
    assert np.mean(values) == pytest.approx(expected, rel=0.15)


def test_sampling_noise_rejects_empty_samples():
    with pytest.raises(InvalidParameterError, match="n_samples"):
        sampling_noise_mmd2(0.5, 0)


def test_mixture_rejects_dimension_mismatch(rng):
    Zs, betas = candidates(rng, n=5)
    with pytest.raises(DimensionMismatchError, match="user"):
        mixture_weights(np.ones((3, 4)), np.ones(3) / 3, Zs, betas, GAMMA)
    with pytest.raises(InvalidParameterError, match="max_components"):
        greedy_mixture(Zs[0], betas[0], Zs, betas, GAMMA, max_components=0)


@pytest.mark.parametrize("seed", range(6))
def test_best_pair_matches_a_grid_over_every_pair(seed):
    # Independent: every pair's MMD^2 evaluated on a fine grid of weights as w'Gw - 2b'w + <u,u>.
    r = np.random.default_rng(seed)
    A = r.normal(size=(5, 4 if seed % 2 else 7))
    G, b, user = A @ A.T, r.normal(size=5), 10.0
    grid = np.linspace(0.0, 1.0, 20001)
    best = (np.inf, None, None)
    for i, j in itertools.combinations(range(5), 2):
        W = np.stack([grid, 1 - grid], axis=1)
        S = G[np.ix_([i, j], [i, j])]
        values = user - 2 * W @ b[[i, j]] + np.einsum("nk,kl,nl->n", W, S, W)
        k = int(np.argmin(values))
        if values[k] < best[0]:
            best = (values[k], (i, j), W[k])
    (i, j), w, value = best_pair(G, b, user)
    assert (i, j) == best[1]
    assert value == pytest.approx(max(best[0], 0.0), abs=1e-6)
    assert_allclose(w, best[2], atol=1e-4)


def test_greedy_starts_from_the_best_pair_when_singles_nearly_tie():
    # A user 0.7 A + 0.3 C; a twin T of A shifted towards C fits better alone, and the pairs
    # holding T (the old start) are worse than the true pair {A, C}, which fits exactly.
    rng, gamma, n = np.random.default_rng(0), 0.05, 300
    centres = np.array([[0, 0], [4, 0], [0.8, 0], [0, 4]], dtype=float)
    Zs = np.stack([rng.normal(size=(n, 2)) + c for c in centres])
    betas = np.full((4, n), 1 / n)
    Zu, bu = np.vstack([Zs[0], Zs[1]]), np.concatenate([np.full(n, 0.7 / n), np.full(n, 0.3 / n)])
    singles = mmd_squared_batch(Zu, bu, Zs, betas, gamma)
    assert int(np.argmin(singles)) == 2  # the twin is the best single
    res = greedy_mixture(Zu, bu, Zs, betas, gamma, max_components=3)
    assert sorted(res.indices.tolist()) == [0, 1]
    assert_allclose(res.weights[np.argsort(res.indices)], [0.7, 0.3], atol=1e-6)
    assert res.mmd2 == pytest.approx(0.0, abs=1e-10)
    assert res.best_single_index == 2
    assert res.gain == pytest.approx(singles[2], rel=1e-6)


def test_greedy_keeps_the_single_when_no_pair_gains_more_than_the_floor():
    G = np.array([[1.0, 0.5], [0.5, 1.0]])
    b = np.array([0.9, 0.5])
    res = greedy_on_gram(G, b, 1.0, max_components=3, min_gain=1.0)
    assert res.indices.tolist() == [0] and res.mmd2 == pytest.approx(1.0 - 1.8 + 1.0)
