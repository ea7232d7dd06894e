"""Error of the RFF sketch against the sketch dimension D: orthogonal vs i.i.d. features.

Usage:
    .venv/bin/python benchmarks/sketch_error.py [--specs 10000] [--queries 20]

A synthetic market per d in {16, 64}: every spec is a Gaussian mixture of 3
components drawn from a shared pool of 40 centres (so many specs are near
neighbours), summarised by K = 20 points with uniform weights; each query is a
fresh K-point sample of one spec's mixture. For every D we report, over all
(query, spec) pairs, the median relative error |sketch - exact| / exact of
MMD^2, the same over each query's exact top-10, how often the exact top-1 is in
the sketch's top-10, and how often the two top-1 agree. Coordinates are
standardised and gamma = 1/(2d). 1 BLAS thread.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specs.kernels import default_gamma  # noqa: E402
from specs.mmd import batch_self_terms, mmd_squared_batch  # noqa: E402
from specs.sketch import RFFSketch  # noqa: E402

K = 20
D_VALUES = (64, 128, 256, 512, 1024, 2048)


def market(m: int, d: int, n_queries: int, rng: np.random.Generator):
    pool = rng.normal(size=(40, d)) * 1.2
    comps = np.stack([rng.choice(40, 3, replace=False) for _ in range(m)])
    weights = rng.dirichlet(np.ones(3), size=m)

    def sample(i: int) -> np.ndarray:
        which = rng.choice(3, size=K, p=weights[i])
        return pool[comps[i, which]] + rng.normal(size=(K, d)) * 0.8

    Zs = np.stack([sample(i) for i in range(m)])
    owners = rng.choice(m, n_queries, replace=False)
    queries = np.stack([sample(i) for i in owners])
    return Zs, np.full((m, K), 1.0 / K), queries


def study(m: int, d: int, n_queries: int) -> None:
    rng = np.random.default_rng(d)
    Zs, betas, queries = market(m, d, n_queries, rng)
    gamma, bq = default_gamma(d), np.full(K, 1.0 / K)
    st = batch_self_terms(Zs, betas, gamma)
    exact = np.stack([mmd_squared_batch(q, bq, Zs, betas, gamma, st) for q in queries])
    for orthogonal in (True, False):
        for D in D_VALUES:
            sk = RFFSketch(d, gamma, D, orthogonal=orthogonal, random_state=0)
            t = time.perf_counter()
            phi = sk.transform_batch(Zs, betas).astype(np.float64)
            t_sk = time.perf_counter() - t
            approx = np.stack([np.sum((phi - sk.transform(q, bq)) ** 2, axis=1) for q in queries])
            rel = np.abs(approx - exact) / exact
            top10 = np.argsort(exact, axis=1)[:, :10]
            rel_near = np.take_along_axis(rel, top10, axis=1)
            best = exact.argmin(axis=1)
            sketch_top10 = np.argsort(approx, axis=1)[:, :10]
            hit = np.mean([b in s for b, s in zip(best, sketch_top10, strict=True)])
            same = np.mean(best == approx.argmin(axis=1))
            kind = "orthogonal" if orthogonal else "iid"
            print(
                f"| {d} | {kind} | {D} | {np.median(rel):.3f} | {np.median(rel_near):.3f} | "
                f"{hit:.2f} | {same:.2f} | {t_sk:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    print(f"\n## Sketch error, {args.specs:,} specs (K = {K}), {args.queries} queries per d\n")
    print(
        "| d | features | D | median rel. err (all) | median rel. err (exact top-10) | "
        "exact top-1 in sketch top-10 | top-1 equal | sketch all specs (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for d in (16, 64):
        study(args.specs, d, args.queries)


if __name__ == "__main__":
    main()
