from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from specs.exceptions import DimensionMismatchError, InvalidParameterError
from specs.mixture import (
    greedy_mixture,
    mixture_is_significant,
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
    n = 3000
    parts = [rng.normal(size=(k, 2)) + CENTRES[i] for i, k in ((1, 1500), (3, 900), (5, 600))]
    user = rkme_fit(np.vstack(parts), K=60, gamma=GAMMA, random_state=0)
    w, mmd2 = mixture_weights(user.Z_, user.beta_, Zs, betas, GAMMA)
    assert_allclose(w, [0, 0.5, 0, 0.3, 0, 0.2], atol=0.05)
    singles = mmd_squared_batch(user.Z_, user.beta_, Zs, betas, GAMMA)
    assert mmd2 <= singles.min() + 1e-12
    mixed = (betas * w[:, None]).ravel()
    assert mmd2 == pytest.approx(mmd_squared(user.Z_, user.beta_, Zs.reshape(-1, 2), mixed, GAMMA), rel=1e-9)
    res = greedy_mixture(user.Z_, user.beta_, Zs, betas, GAMMA, n_samples=n)
    assert set(res.indices.tolist()) == {1, 3, 5}
    assert res.significant is True
    assert res.best_single_index == int(np.argmin(singles))
    assert res.best_single_mmd2 == pytest.approx(singles.min(), rel=1e-9)
    assert all(a >= b for a, b in zip(res.history, res.history[1:], strict=False))


def test_significance_rarely_fires_on_single_domain_data_and_always_on_mixtures():
    rng = np.random.default_rng(0)
    Zs, betas = candidates(rng, n=300)
    n, false_pos = 200, 0
    for _ in range(100):
        X = rng.normal(size=(n, 2)) + CENTRES[0]
        res = greedy_mixture(X, np.full(n, 1 / n), Zs, betas, GAMMA, n_samples=n)
        false_pos += bool(res.significant)
        assert res.best_single_index == 0
    assert false_pos <= 2
    for _ in range(20):
        X = np.vstack([rng.normal(size=(n // 2, 2)) + CENTRES[0], rng.normal(size=(n // 2, 2)) + CENTRES[1]])
        res = greedy_mixture(X, np.full(n, 1 / n), Zs, betas, GAMMA, n_samples=n)
        assert res.significant and set(res.indices.tolist()) == {0, 1}


def test_sampling_noise_matches_simulated_empirical_embedding_error():
    # E MMD^2(P_hat_n, P) against a large-sample stand-in for P.
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(4000, 2))
    norm2 = float(np.exp(-GAMMA * cdist(ref, ref, "sqeuclidean")).mean())
    n, values = 50, []
    for _ in range(200):
        X = rng.normal(size=(n, 2))
        values.append(mmd_squared_batch(X, np.full(n, 1 / n), ref[None], np.full((1, 4000), 1 / 4000), GAMMA, [norm2])[0])
    expected = sampling_noise_mmd2(norm2, n) + sampling_noise_mmd2(norm2, 4000)
    assert np.mean(values) == pytest.approx(expected, rel=0.15)


def test_mixture_is_significant_compares_gain_with_noise():
    assert mixture_is_significant(0.05, 0.01, self_term=0.5, n_samples=100)  # gain 0.04 > 2 * 0.005
    assert not mixture_is_significant(0.05, 0.045, self_term=0.5, n_samples=100)
    with pytest.raises(InvalidParameterError, match="factor"):
        mixture_is_significant(0.05, 0.01, self_term=0.5, n_samples=100, factor=0)
    with pytest.raises(InvalidParameterError, match="n_samples"):
        sampling_noise_mmd2(0.5, 0)


def test_mixture_rejects_dimension_mismatch(rng):
    Zs, betas = candidates(rng, n=5)
    with pytest.raises(DimensionMismatchError, match="user"):
        mixture_weights(np.ones((3, 4)), np.ones(3) / 3, Zs, betas, GAMMA)
    with pytest.raises(InvalidParameterError, match="max_components"):
        greedy_mixture(Zs[0], betas[0], Zs, betas, GAMMA, max_components=0)
