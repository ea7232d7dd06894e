"""95 % intervals for the benchmark's figures: Student-t for means over tasks, Wilson for
proportions (recall, top-1, agreement), both cut at the metric's range when asked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _stats


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 2) -> str:
        if self.n == 0 or math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] (n={self.n})"


NAN = Interval(math.nan, math.nan, math.nan, 0)


def mean_interval(
    values: Sequence[float], *, level: float = 0.95, bounds: tuple[float, float] | None = None
) -> Interval:
    """Mean with a Student-t interval (one value: the interval is the point itself)."""
    xs = [float(v) for v in values if not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return NAN
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(mean, low, high, n)


def proportion_interval(successes: int, n: int, *, level: float = 0.95) -> Interval:
    """Wilson score interval of successes / n."""
    if n == 0:
        return NAN
    z = _stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)
