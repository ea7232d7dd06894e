"""The benchmark's interval helpers against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.markets.stats import mean_interval, proportion_interval


def test_mean_interval_matches_the_t_interval_from_scipy_and_a_table_value():
    from scipy import stats

    xs = [0.81, 0.77, 0.90, 0.85, 0.79]
    got = mean_interval(xs)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(xs), scale=stats.sem(xs))
    assert got.value == pytest.approx(0.824)
    assert (got.low, got.high) == pytest.approx((low, high))
    # By hand: t(0.975, 4) = 2.776, sd = 0.05177, half width = 2.776 * 0.05177 / sqrt(5) = 0.0643.
    assert got.high - got.value == pytest.approx(0.0643, abs=5e-4)


def test_mean_interval_is_cut_at_the_bounds_and_skips_nans():
    got = mean_interval([1.0, 1.0, 0.9, float("nan")], bounds=(0.0, 1.0))
    assert got.n == 3 and got.high == 1.0 and got.low < got.value < 1.0
    assert mean_interval([]).text() == "n/a"
    single = mean_interval([0.5])
    assert (single.low, single.high) == (0.5, 0.5)


def test_wilson_interval_matches_the_textbook_example():
    # 8 of 10 (Wilson 1927 / Newcombe 1998 table): 0.4902 to 0.9433.
    got = proportion_interval(8, 10)
    assert got.value == 0.8
    assert (got.low, got.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    all_in = proportion_interval(20, 20)
    assert all_in.high == 1.0 and all_in.low == pytest.approx(20 / (20 + 1.959964**2), abs=1e-4)
    assert math.isnan(proportion_interval(0, 0).value)
