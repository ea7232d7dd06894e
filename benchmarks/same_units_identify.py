"""Identification by data with and without the same-units prior (docs/search.md, "Same units").

Usage:
    .venv/bin/python benchmarks/same_units_identify.py [--markets flights,hotels] [--users 20]

The table markets of issue 20's benchmark (benchmarks/markets/) are published as in
benchmarks/reuse_markets.py (upload service + publish pipeline, throw-away SQLite). Each domain then
gets ``--users`` single-domain users of 200 rows (disjoint from the developers' and each other's),
searched through ``selectors.search_by_data`` (the search the API and the identify stage use):
in the developers' units, and with every column in other units (a fresh factor per user and column,
log-uniform in x0.1..x10; ``--scale-max`` changes the range). For each: top-1 of the unit-free
ranking (no user RMS) and of the ranking with the prior, and how often the prior held.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_ROWS = 200


def run_market(name: str, users: int, scale_max: float, dev: object, owner: object) -> str:
    from benchmarks.markets import developers, load_market
    from marketplace.learnwares.conf import rkme_k
    from marketplace.learnwares.models import LearnwareVersion
    from marketplace.search.same_units import SAME
    from marketplace.search.selectors import search_by_data
    from specs.data_rkme import table_rkme
    from specs.units import unit_rms

    market = load_market(name, quick=False)
    by_version, _ = developers.publish(dev, market)
    space = LearnwareVersion.objects.get(id=next(iter(by_version))).learnware.feature_space
    rng = np.random.default_rng(20)
    counts = {k: 0 for k in ("free_raw", "prior_raw", "free_other", "prior_other", "held_raw", "held_other")}
    total = 0
    for domain, dom in market.domains.items():
        order = rng.permutation(dom.X_user.shape[0])
        for u in range(min(users, dom.X_user.shape[0] // N_ROWS)):  # disjoint users while rows last
            X = dom.X_user[order[u * N_ROWS : (u + 1) * N_ROWS]]
            units = np.exp(rng.uniform(-np.log(scale_max), np.log(scale_max), X.shape[1]))
            total += 1
            for tag, rows in (("raw", X), ("other", X * units)):
                spec = table_rkme(rows, space.standardization, space.gamma, k=rkme_k())
                kw = dict(user=owner, feature_space=space.key, Z=spec.Z_, beta=spec.beta_, k=5, mixture=False)
                free = search_by_data(n_samples=N_ROWS, **kw)
                prior = search_by_data(n_samples=N_ROWS, user_rms=unit_rms(rows), **kw)
                counts[f"free_{tag}"] += by_version[int(free.ids[0])] == domain
                counts[f"prior_{tag}"] += by_version[int(prior.ids[0])] == domain
                counts[f"held_{tag}"] += prior.units is not None and prior.units.comparison == SAME
    f = {k: v / total for k, v in counts.items()}
    return (
        f"{name:<8} {total:>5}  {f['free_raw']:>9.2f} {f['prior_raw']:>9.2f} {f['held_raw']:>9.2f}  "
        f"{f['free_other']:>11.2f} {f['prior_other']:>11.2f} {f['held_other']:>11.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", default="flights,hotels")
    parser.add_argument("--users", type=int, default=20, help="single-domain users per domain")
    parser.add_argument("--scale-max", type=float, default=10.0, help="other units: x1/s..xs per column")
    args = parser.parse_args()
    from benchmarks.reuse_quality import setup_django

    with tempfile.TemporaryDirectory() as tmp:
        setup_django(Path(tmp))
        from django.contrib.auth import get_user_model

        dev = get_user_model().objects.create_user("developer")
        owner = get_user_model().objects.create_user("user")
        lines = [
            f"{'market':<8} {'users':>5}  {'raw:free':>9} {'raw:prior':>9} {'raw:held':>9}  "
            f"{'other:free':>11} {'other:prior':>11} {'other:held':>11}"
        ]
        for name in [m for m in args.markets.split(",") if m]:
            lines.append(run_market(name, args.users, args.scale_max, dev, owner))
            print(lines[-1], file=sys.stderr, flush=True)
    print(
        f"top-1 of {N_ROWS}-row single-domain users; other units: each column x{1 / args.scale_max:g}..x"
        f"{args.scale_max:g}; held = the prior held (ranked in the learnwares' units)"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
