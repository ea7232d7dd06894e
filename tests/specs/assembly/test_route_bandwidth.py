"""The routing kernels' factors chosen on the members' own RKME points, left out one at a time: self-routing
accuracy (the job selector) and the log-likelihood of the point's own member (the soft selector)."""

from __future__ import annotations

import numpy as np
import pytest

from specs.assembly.route_bandwidth import (
    DEFAULT_ROUTE_GAMMA_FACTOR,
    MIN_RESPONSIBILITY,
    ROUTE_GAMMA_FACTORS,
    SOFT_ROUTE_GAMMA_FACTORS,
    choose_route_gamma_factor,
    choose_soft_route_gamma_factor,
    self_routing_accuracy,
    soft_routing_log_likelihood,
)
from specs.exceptions import InvalidParameterError


def _loop_home(Zs, betas, gamma, weights):
    """Per member, per point: is the point routed home? Plain loops, no rescaling, no shared code."""
    m = len(Zs)
    home = []
    for i in range(m):
        row = []
        for j in range(Zs[i].shape[0]):
            x = Zs[i][j]
            dens = []
            for k in range(m):
                total = 0.0
                for l_ in range(Zs[k].shape[0]):
                    if (k, l_) != (i, j):
                        total += betas[k][l_] * np.exp(-gamma * np.sum((x - Zs[k][l_]) ** 2))
                dens.append(weights[k] * total if weights[k] > 0 else -np.inf)
            row.append(int(np.argmax(dens)) == i)
        home.append(np.array(row, dtype=float))
    return home


def _loop_accuracy(home, betas, weights):
    live = [i for i in range(len(home)) if weights[i] > 0 and np.maximum(betas[i], 0).sum() > 0]
    total_w = sum(weights[i] for i in live)
    return sum(
        weights[i] / total_w * np.sum(np.maximum(betas[i], 0) * home[i]) / np.maximum(betas[i], 0).sum()
        for i in live
    )


def _random_members(seed: int):
    rng = np.random.default_rng(seed)
    Zs = [rng.normal(loc=c, scale=1.0, size=(n, 3)) for c, n in ((0.0, 7), (1.0, 6), (0.5, 5))]
    betas = [rng.uniform(-0.2, 1.0, size=z.shape[0]) for z in Zs]
    betas = [b / b.sum() for b in betas]
    return Zs, betas


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [0.2, 0.0, 0.8]])
def test_self_routing_accuracy_matches_a_loop(weights) -> None:
    Zs, betas = _random_members(0)
    assert any((b < 0).any() for b in betas)  # negative betas are routed but carry no score
    for gamma in (0.05, 0.5, 3.0):
        expected = _loop_accuracy(_loop_home(Zs, betas, gamma, weights), betas, weights)
        assert self_routing_accuracy(Zs, betas, gamma, weights) == pytest.approx(expected, abs=1e-12)


def test_choice_matches_a_loop_with_its_standard_error() -> None:
    for seed in range(6):
        Zs, betas = _random_members(seed)
        w, gamma = [1.0, 1.0, 1.0], 0.02
        homes = {f: _loop_home(Zs, betas, gamma * f, w) for f in ROUTE_GAMMA_FACTORS}
        acc = {f: _loop_accuracy(homes[f], betas, w) for f in ROUTE_GAMMA_FACTORS}
        best = max(ROUTE_GAMMA_FACTORS, key=lambda f: (acc[f], -f))  # ties -> the smaller factor
        var, gain = 0.0, 0.0
        for i in range(3):
            p = np.maximum(betas[i], 0) / np.maximum(betas[i], 0).sum()
            d = homes[best][i] - homes[DEFAULT_ROUTE_GAMMA_FACTOR][i]
            g_i = np.sum(p * d)
            gain += g_i / 3
            var += np.sum(p**2 * (d - g_i) ** 2) / 9
        for z in (0.0, 1.0, 2.0):
            expected = best if gain > 0 and gain > z * np.sqrt(var) else DEFAULT_ROUTE_GAMMA_FACTOR
            got = choose_route_gamma_factor(Zs, betas, gamma, z=z)
            assert got.factor == expected
            assert got.accuracies == pytest.approx([acc[f] for f in got.factors], abs=1e-12)


def test_well_separated_members_keep_the_default() -> None:
    rng = np.random.default_rng(1)
    Zs = [rng.normal(loc=c, scale=1.0, size=(30, 2)) for c in (-15.0, 15.0)]
    betas = [np.full(30, 1 / 30)] * 2
    got = choose_route_gamma_factor(Zs, betas, 1 / 4)
    assert got.accuracies == pytest.approx([1.0] * len(ROUTE_GAMMA_FACTORS))
    assert got.factor == DEFAULT_ROUTE_GAMMA_FACTOR


def test_interleaved_narrow_clusters_need_a_narrower_kernel() -> None:
    """Member A's tight clusters at 0, 2, 4, 6 and B's at 1, 3, 5, 7: under the wide kernels their
    densities overlap and points are sent to the wrong member; a kernel narrower than the unit
    spacing routes every point home."""
    rng = np.random.default_rng(2)
    Zs = [
        np.column_stack(
            [np.repeat(np.arange(start, 8, 2.0), 8) + rng.normal(0, 0.05, 32), rng.normal(0, 0.05, 32)]
        )
        for start in (0.0, 1.0)
    ]
    betas = [np.full(32, 1 / 32)] * 2
    gamma = 0.01  # the space's gamma: kernel width ~ 7, the whole market
    got = choose_route_gamma_factor(Zs, betas, gamma)
    acc = dict(zip(got.factors, got.accuracies, strict=True))
    assert acc[16.0] < 0.9 and acc[256.0] == pytest.approx(1.0)
    assert got.factor > DEFAULT_ROUTE_GAMMA_FACTOR
    assert got.factor == min(f for f in got.factors if acc[f] == max(got.accuracies))
    # A margin of 100 standard errors keeps the default however large the gain.
    assert choose_route_gamma_factor(Zs, betas, gamma, z=100.0).factor == DEFAULT_ROUTE_GAMMA_FACTOR


def test_a_member_of_weight_zero_is_neither_routed_to_nor_scored() -> None:
    Zs, betas = _random_members(3)
    decoy = Zs[0] + 1e-3  # sits on member 0's points: would capture them if it were routed to
    with_decoy = self_routing_accuracy([*Zs, decoy], [*betas, betas[0]], 0.5, [1.0, 1.0, 1.0, 0.0])
    assert with_decoy == pytest.approx(self_routing_accuracy(Zs, betas, 0.5), abs=1e-12)


def test_the_default_must_be_among_the_factors() -> None:
    Zs, betas = _random_members(0)
    with pytest.raises(InvalidParameterError):
        choose_route_gamma_factor(Zs, betas, 0.5, factors=(4.0, 64.0))
    with pytest.raises(InvalidParameterError):
        choose_route_gamma_factor(Zs, betas, 0.0)


def _loop_log_likelihood(Zs, betas, gamma, weights, floor):
    """Leave-one-out log-responsibility of each point's own member: plain loops, no shared code."""
    live = [i for i in range(len(Zs)) if weights[i] > 0 and np.maximum(betas[i], 0).sum() > 0]
    total_w = sum(weights[i] for i in live)
    out = 0.0
    for i in live:
        pos = np.maximum(betas[i], 0)
        for j in range(Zs[i].shape[0]):
            dens = []
            for k in range(len(Zs)):
                total = sum(
                    betas[k][l_] * np.exp(-gamma * np.sum((Zs[i][j] - Zs[k][l_]) ** 2))
                    for l_ in range(Zs[k].shape[0])
                    if (k, l_) != (i, j)
                )
                dens.append(max(weights[k] * total, 0.0))
            r = dens[i] / sum(dens) if sum(dens) > 0 else 0.0
            out += weights[i] / total_w * pos[j] / pos.sum() * np.log(max(r, floor))
    return out


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [0.2, 0.0, 0.8]])
def test_soft_routing_log_likelihood_matches_a_loop(weights) -> None:
    Zs, betas = _random_members(1)
    for gamma in (0.05, 0.5, 3.0):
        expected = _loop_log_likelihood(Zs, betas, gamma, weights, MIN_RESPONSIBILITY)
        got = soft_routing_log_likelihood(Zs, betas, gamma, weights)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_the_soft_factor_is_the_most_likely_one_wide_for_overlap_and_narrow_when_apart() -> None:
    Zs, betas = _random_members(2)
    choice = choose_soft_route_gamma_factor(Zs, betas, 0.1, factors=(1.0, 4.0, 16.0))
    expected = [_loop_log_likelihood(Zs, betas, 0.1 * f, [1, 1, 1], MIN_RESPONSIBILITY) for f in (1, 4, 16)]
    assert choice.accuracies == pytest.approx(expected, rel=1e-9)
    assert choice.factor == (1.0, 4.0, 16.0)[int(np.argmax(expected))]
    rng = np.random.default_rng(3)
    # Two members drawn from one distribution: no kernel can tell them apart, so the widest wins
    # (responsibilities near 1/2 everywhere are the calibrated answer).
    same = [rng.normal(size=(20, 2)) for _ in range(2)]
    flat = [np.full(20, 1 / 20)] * 2
    assert choose_soft_route_gamma_factor(same, flat, 0.5).factor == SOFT_ROUTE_GAMMA_FACTORS[0]
    # Two separated clusters under a wide base kernel: sharper kernels make the responsibilities of
    # their own points more certain, so a narrow factor wins.
    apart = [rng.normal(size=(20, 2)) * 0.5, rng.normal(size=(20, 2)) * 0.5 + 3.0]
    assert choose_soft_route_gamma_factor(apart, flat, 0.05).factor >= 64.0
