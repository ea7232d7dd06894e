"""specs.evaluation against independent computations: brute-force loops, scipy's t test, and
a simulation of the rule's false-positive rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from specs.evaluation import (
    corrected_se,
    metric_bounds,
    one_se_choice,
    paired_verdict,
    proportion_interval,
    repeated_folds,
    score_interval,
)
from specs.exceptions import InvalidDataError


def test_repeated_folds_cover_every_row_once_per_repeat_and_keep_a_rare_class_in_some_test_folds():
    y = np.array([0] * 48 + [1] * 2)
    folds = repeated_folds(y, stratify=True, k=5, repeats=4, seed=3)
    assert folds.k == 5 and len(folds.splits) == 20 and folds.test_share == pytest.approx(0.25)
    for r in range(4):
        tested = np.concatenate([test for _, test in folds.splits[r * 5 : (r + 1) * 5]])
        assert np.array_equal(np.sort(tested), np.arange(50))
    for train, test in folds.splits:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 50
    # Each positive is tested once per repeat: 2 of every 5 folds hold one.
    assert sum(int((y[test] == 1).any()) for _, test in folds.splits) == 8


def test_repeated_folds_shrink_k_to_what_the_rows_allow_and_refuse_too_few_rows():
    assert repeated_folds(np.array([0, 0, 0, 1, 1, 1]), stratify=True, k=5, repeats=1).k == 3
    assert repeated_folds(np.arange(8.0), stratify=False, k=5, repeats=1).k == 4
    with pytest.raises(InvalidDataError, match="too few"):
        repeated_folds(np.array([0, 1, 0]), stratify=True)


def test_the_corrected_standard_error_is_the_nadeau_bengio_formula():
    rng = np.random.default_rng(0)
    v = rng.normal(0.8, 0.05, size=25)
    by_hand = np.sqrt((1 / 25 + 0.25) * np.sum((v - v.mean()) ** 2) / 24)
    assert corrected_se(v, 0.25) == pytest.approx(by_hand, rel=1e-12)
    # With no correction (test_share 0) the interval is scipy's one-sample t interval.
    low, high = stats.t.interval(0.95, df=24, loc=v.mean(), scale=stats.sem(v))
    assert score_interval(v, 0.0)["ci95"] == pytest.approx([low, high], rel=1e-10)
    assert corrected_se([0.5], 0.25) == float("inf")


def test_paired_verdicts_follow_the_sign_of_the_differences_interval():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.6, 0.8, size=20)
    noise = rng.normal(0, 0.01, size=20)
    assert paired_verdict(base + 0.1 + noise, base, 0.25)[0] == "better"
    assert paired_verdict(base - 0.1 + noise, base, 0.25)[0] == "worse"
    assert paired_verdict(base, base, 0.25)[0] == "no_difference"
    verdict, interval = paired_verdict(base + noise, base, 0.25)
    # Recomputed by a one-sample t test on the differences with the corrected scale.
    d = noise
    t = d.mean() / np.sqrt((1 / 20 + 0.25) * d.var(ddof=1))
    p = 2 * stats.t.sf(abs(t), df=19)
    assert (verdict == "no_difference") == (p >= 0.05)
    assert interval["mean"] == pytest.approx(d.mean(), abs=1e-15)


def test_the_one_se_rule_keeps_the_default_unless_a_gain_exceeds_its_standard_error():
    base = np.array([0.70, 0.72, 0.68, 0.71, 0.69, 0.70, 0.73, 0.67])
    small = base + np.array([0.01, -0.01, 0.02, 0.0, -0.02, 0.01, 0.0, 0.0])  # mean gain 0.00125, noisy
    large = base + 0.05 + np.array([0.01, -0.01, 0.0, 0.01, -0.01, 0.0, 0.0, 0.0])
    chosen, gains = one_se_choice("free", {"free": base, "small": small, "large": large}, 1 / 3)
    assert chosen == "large"
    assert gains["small"]["gain"] == pytest.approx(0.00125) and gains["small"]["gain"] < gains["small"]["se"]
    assert one_se_choice("free", {"free": base, "small": small}, 1 / 3)[0] == "free"


def test_the_one_se_rule_rarely_replaces_the_default_when_nothing_is_better():
    """Simulation: two methods with equal expected accuracy scored on the same repeated folds of
    50 rows; the rule must switch in far fewer than half of the users (it switches only on a gain
    above one corrected standard error)."""
    rng = np.random.default_rng(7)
    switched = 0
    for _ in range(200):
        correct_a = rng.random(50) < 0.8
        correct_b = rng.random(50) < 0.8
        folds = repeated_folds(np.zeros(50), stratify=False, k=5, repeats=4, seed=int(rng.integers(1 << 30)))
        a = [correct_a[test].mean() for _, test in folds.splits]
        b = [correct_b[test].mean() for _, test in folds.splits]
        switched += one_se_choice("a", {"a": a, "b": b}, folds.test_share)[0] == "b"
    assert switched / 200 < 0.25, switched


def test_the_wilson_interval_matches_its_closed_form():
    low, high = proportion_interval(27, 30)
    z = stats.norm.ppf(0.975)
    p, n = 0.9, 30
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert [low, high] == pytest.approx([centre - half, centre + half], rel=1e-12)
    assert proportion_interval(30, 30)[1] == pytest.approx(1.0) and proportion_interval(0, 30)[
        0
    ] == pytest.approx(0.0, abs=1e-15)


def test_an_interval_is_cut_at_the_range_of_its_metric():
    # Three folds at 1.0 and one at 0.6: the t interval's upper end is above 1 before the cut.
    v = np.array([1.0, 1.0, 1.0, 0.6])
    raw = score_interval(v, 0.25)["ci95"]
    assert raw[1] > 1.0
    cut = score_interval(v, 0.25, bounds=metric_bounds("accuracy"))["ci95"]
    assert cut == pytest.approx([raw[0], 1.0]) and cut[0] >= 0.0
    assert metric_bounds("r2") == (-np.inf, 1.0) and metric_bounds("unknown") == (-np.inf, np.inf)
