"""Calibration of the mixture test, measured by simulation (an independent computation of its error rates).

The false-positive rate is counted over users drawn from ONE candidate's distribution (H0),
the power over users drawn from two candidates' distributions (70/30), both with the RKMEs
the product computes (reduced sets of 50 points, not exact embeddings).
"""

from __future__ import annotations

import numpy as np
import pytest

from specs.exceptions import InvalidParameterError
from specs.mixture import gram_terms
from specs.mixture_bootstrap import component_shares, mixture_bootstrap_test, select_mixture
from specs.rkme import rkme_fit

CENTRES = np.array([[0, 0], [3, 0], [0, 3], [3, 3], [-3, 0], [0, -3]], dtype=float)
GAMMA = 0.25
N_USER = 200
DRAWS = 49


@pytest.fixture(scope="module")
def market():
    rng = np.random.default_rng(11)
    specs = [rkme_fit(rng.normal(size=(500, 2)) + c, K=50, gamma=GAMMA, random_state=0) for c in CENTRES]
    return np.stack([s.Z_ for s in specs]), np.stack([s.beta_ for s in specs])


def _test(market, X, seed, **kw):
    Zs, betas = market
    u = rkme_fit(X, K=50, gamma=GAMMA, random_state=seed)
    return mixture_bootstrap_test(
        u.Z_, u.beta_, Zs, betas, GAMMA, n_samples=X.shape[0], rows=X, n_draws=DRAWS, seed=seed, **kw
    )


def test_false_positive_rate_on_single_domain_users_is_at_most_alpha(market):
    rng = np.random.default_rng(5)
    trials, hits, ps = 60, 0, []
    for t in range(trials):
        ev = _test(market, rng.normal(size=(N_USER, 2)) + CENTRES[t % 3], t)
        assert ev.mixture.best_single_index == t % 3
        hits += ev.significant
        ps.append(ev.p_value)
    # alpha = 0.05: 3 expected; 6 of 60 is the binomial(60, 0.05) 97th percentile (slack for the simulation).
    assert hits <= 6, f"false positives {hits}/{trials}"
    assert np.median(ps) > 0.3  # p-values under H0 are not piled up near 0


def test_power_on_a_separable_two_domain_user(market):
    rng = np.random.default_rng(6)
    trials, found = 20, 0
    for t in range(trials):
        X = np.vstack([rng.normal(size=(140, 2)) + CENTRES[0], rng.normal(size=(60, 2)) + CENTRES[5]])
        ev = _test(market, X, t)
        found += ev.significant and set(ev.mixture.indices.tolist()) == {0, 5}
    assert found >= 16, f"power {found}/{trials}"


def test_evidence_reports_weights_in_decreasing_order_and_gain_shares(market):
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(size=(100, 2)) + CENTRES[1], rng.normal(size=(100, 2)) + CENTRES[2]])
    ev = _test(market, X, 0)
    assert ev.significant and ev.p_value == pytest.approx(1 / (DRAWS + 1))
    assert set(ev.mixture.indices.tolist()) == {1, 2}
    assert ev.mixture.weights[0] >= ev.mixture.weights[1] and ev.mixture.weights.sum() == pytest.approx(1.0)
    assert ev.component_shares.sum() == pytest.approx(1.0) and (ev.component_shares > 0.2).all()
    assert ev.null_quantile < ev.mixture.gain


def test_select_mixture_prunes_small_weights_and_shares_match_leave_one_out():
    # Three orthonormal candidates and a user at weights (0.6, 0.37, 0.03): the third is pruned.
    G, b, user = np.eye(3), np.array([0.6, 0.37, 0.03]), 0.6**2 + 0.37**2 + 0.03**2
    res = select_mixture(G, b, user, max_components=3, min_weight=0.05)
    assert res.indices.tolist() == [0, 1]
    np.testing.assert_allclose(res.weights, [0.615, 0.385], atol=1e-9)  # (0.6, 0.37) + 0.03 shared equally
    # Leave-one-out by hand: removing 0 leaves the single e1 (MMD^2 ||u - e1||^2), removing 1 leaves e0.
    full = res.mmd2
    loss = np.array([(user - 2 * 0.37 + 1) - full, (user - 2 * 0.6 + 1) - full])
    np.testing.assert_allclose(component_shares(G, b, user, res), loss / loss.sum(), rtol=1e-9)


def test_single_component_gets_p_value_one_and_bad_parameters_are_named(market):
    Zs, betas = market
    ev = mixture_bootstrap_test(Zs[0], betas[0], Zs, betas, GAMMA, n_samples=500, n_draws=DRAWS)
    assert len(ev.mixture.indices) == 1 and ev.p_value == 1.0 and not ev.significant and not ev.plausible
    with pytest.raises(InvalidParameterError, match="alpha"):
        mixture_bootstrap_test(Zs[0], betas[0], Zs, betas, GAMMA, n_samples=500, alpha=1.5)
    with pytest.raises(InvalidParameterError, match="n_samples"):
        mixture_bootstrap_test(Zs[0], betas[0], Zs, betas, GAMMA, n_samples=0)
    with pytest.raises(InvalidParameterError, match="rows"):
        G, _, _ = gram_terms(Zs[0], betas[0], Zs, betas, GAMMA)
        X = np.vstack([Zs[1][:20], Zs[2][:20]])
        mixture_bootstrap_test(X, np.full(40, 1 / 40), Zs, betas, GAMMA, n_samples=40, rows=np.ones((5, 3)))
