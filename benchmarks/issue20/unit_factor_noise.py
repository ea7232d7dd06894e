"""How noisy is the per-column unit factor (specs.units) on real markets, and what would a noise test do?

Usage:
    nice -n 15 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/issue20/unit_factor_noise.py \
        [--markets hotels,flights] [--draws 100] [--z 2,3,4]

For each domain of a table market (benchmarks/markets/), the developer's rows give the member's
per-column RMS r_m and fourth moment kappa = E[x^4] / E[x^2]^2. Users are 200-row draws of the
domain's held-out rows, (a) in the developer's units, (b) with every column x10. Printed per z:
- the share of columns called "other units" (|log s| > log 1.25) for users in the developer's
  units, by the plain ratio s = r_u / r_m and by the noise test (s set to 1 when
  |log s| <= z * sqrt((kappa - 1) / n) / 2, the delta-method standard error under "same units");
- the share of x10 columns (with a non-zero user value) whose factor lands within x1.25 of 10.
No product code is changed by this script: it measures the rule, it does not install it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

N_ROWS = 200
OFF = np.log(1.25)


def _rms(X: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.mean(X * X, axis=0))
    return np.where(r > 0, r, 1.0)


def _tested(s: np.ndarray, kappa: np.ndarray, zero: np.ndarray, z: float) -> np.ndarray:
    se = 0.5 * np.sqrt(np.maximum(kappa - 1.0, 0.0) / N_ROWS)
    return np.where((np.abs(np.log(s)) <= z * se) | zero, 1.0, s)


def run(name: str, draws: int, zs: list[float]) -> None:
    from benchmarks.markets import load_market

    market = load_market(name, quick=True)
    rng = np.random.default_rng(0)
    tally = {z: np.zeros(4) for z in zs}  # off_plain, off_tested, x10 found plain, x10 found tested
    cols = nz_cols = 0
    for dom in market.domains.values():
        r_m = _rms(dom.X_dev)
        ms = np.mean(dom.X_dev**2, axis=0)
        zero = ms == 0
        kappa = np.where(zero, 0.0, np.mean(dom.X_dev**4, axis=0) / np.where(zero, 1.0, ms) ** 2)
        for _ in range(draws):
            X = dom.X_user[rng.choice(len(dom.X_user), N_ROWS, replace=False)]
            s = _rms(X) / r_m
            s10 = _rms(10.0 * X) / r_m
            nz = np.any(X != 0, axis=0)
            cols += s.size
            nz_cols += int(nz.sum())
            for z in zs:
                t, t10 = _tested(s, kappa, zero, z), _tested(s10, kappa, zero, z)
                tally[z] += [
                    np.sum(np.abs(np.log(s)) > OFF),
                    np.sum(np.abs(np.log(t)) > OFF),
                    np.sum((np.abs(np.log(s10 / 10.0)) < OFF)[nz]),
                    np.sum((np.abs(np.log(t10 / 10.0)) < OFF)[nz]),
                ]
    for z in zs:
        a = tally[z]
        print(
            f"{name:8s} z={z:g}: same-units columns called other units: plain {a[0] / cols:.3f}, "
            f"tested {a[1] / cols:.3f}; x10 columns found (within x1.25): plain {a[2] / nz_cols:.3f}, "
            f"tested {a[3] / nz_cols:.3f}  ({cols} columns, {draws} users per domain)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", default="hotels,flights")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--z", default="2,3,4")
    args = ap.parse_args()
    for name in args.markets.split(","):
        run(name, args.draws, [float(v) for v in args.z.split(",")])


if __name__ == "__main__":
    main()
