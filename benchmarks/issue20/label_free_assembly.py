"""Issue 20: label-free assembly of a found mixture on a disjoint-class market (specs level, no server).

Market: sklearn digits, 5 developers on DISJOINT class pairs {0,1}, {2,3}, ... Each developer
trains a multinomial logistic regression on its rows and publishes the product's RKME (K=100)
of them in the standardised space. A user is 200 held-out rows: one domain, or two domains
50/50 or 70/30. Identification is ``specs.mixture_bootstrap_test`` as the identify stage runs
it; over the identified components, each label-free method is scored on the user's 200 rows:

* route   - the RKME job selector (uniform over the components, gamma x the factor
            ``specs.assembly.route_bandwidth.choose_route_gamma_factor`` picks, as the pipeline does),
* average - the mixture-weighted average of the members' probabilities over the union of
            their classes (absent classes 0, as ``specs.recipe.in_task_classes`` places them),
* single  - the best single learnware by MMD,
* before  - what the product delivered before issue 20: route whenever a mixture is proposed,
* soft    - the RKME soft selector (each row's probabilities weighted by its responsibilities, the
            kernel ``choose_soft_route_gamma_factor`` picks, as the pipeline does),
* uniform - the plain average of the components' probabilities,
* choice  - ``specs.assembly.label_free.label_free_choice`` (routes' shares vs the mixture weights),
and the oracles: the best TRUE member alone and the average of the TRUE pair.

    PYTHONPATH=. .venv/bin/python benchmarks/issue20/label_free_assembly.py [--users 20] [--market fashion]

(transformed: the digits in 5 transformations of benchmarks/reuse_quality.py, all classes shared;
hotels, flights: the reuse benchmark's table markets, every domain with the same two classes;
fashion: Fashion-MNIST's test images, the bench's disjoint pairs, pixels standardised as a table:
an approximation of the product's image space, members are logistic regressions.)
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from specs import TableStandardizer, default_gamma, mixture_bootstrap_test, rkme_fit
from specs.assembly import RKMEJobSelector, RKMESoftSelector, WeightedEnsemble
from specs.assembly.label_free import label_free_choice
from specs.assembly.route_bandwidth import choose_route_gamma_factor, choose_soft_route_gamma_factor

K, N_USER = 100, 200


def digits() -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(float), y, [(2 * i, 2 * i + 1) for i in range(5)]


def fashion() -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Fashion-MNIST pixels in [0, 1] (784-d), the bench's disjoint pairs (benchmarks/markets/fashion.py)."""
    from benchmarks.markets.fashion import GROUPS, _idx

    X = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(float) / 255.0
    return X, _idx("t10k-labels-idx1-ubyte.gz", 8).astype(int), list(GROUPS.values())


def table_market(name: str) -> list:
    """A table market of the reuse benchmark (benchmarks/markets: hotels by segment, flights by carrier):
    every domain knows the same two classes and the domains overlap. Labels as indices over the union."""
    from benchmarks.markets import load_market

    data = load_market(name, quick=True)
    index = {c: i for i, c in enumerate(data.classes)}
    code = np.vectorize(index.__getitem__)
    return [
        ((d.X_dev[:1000], code(d.y_dev[:1000])), (d.X_user, code(d.y_user))) for d in data.domains.values()
    ]


def transformed_market(rng: np.random.Generator) -> list:
    """The reuse_quality market's digits in 5 transformations (tests/support/market.py): every domain
    knows all 10 classes, but the domains do not overlap, so routing is what a mixture needs."""
    from sklearn.datasets import load_digits

    from tests.support.market import DOMAINS, transform

    X, y = load_digits(return_X_y=True)
    idx = rng.permutation(X.shape[0])
    dev, user = idx[: X.shape[0] // 2], idx[X.shape[0] // 2 :]
    return [((transform(X[dev], d), y[dev]), (transform(X[user], d), y[user])) for d in DOMAINS]


def market(rng: np.random.Generator, name: str):
    if name in ("hotels", "flights"):
        return table_market(name)
    if name == "transformed":
        return transformed_market(rng)
    X, y, pairs = {"digits": digits, "fashion": fashion}[name]()
    doms = []
    for pair in pairs:
        keep = np.isin(y, pair)
        Xi, yi = X[keep], y[keep]
        idx = rng.permutation(Xi.shape[0])
        dev = min(Xi.shape[0] - N_USER, 1000)
        doms.append(((Xi[idx[:dev]], yi[idx[:dev]]), (Xi[idx[dev:]], yi[idx[dev:]])))
    return doms


def union_probs(model: LogisticRegression, X: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((X.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(X)  # the member's classes in the union's columns, others 0
    return out


def gap(d: np.ndarray) -> str:
    """Mean [95 % t-interval] of per-user differences."""
    from scipy import stats

    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else np.nan
    return f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]"


def acc(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(p.argmax(axis=1) == y))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    markets = ("digits", "fashion", "hotels", "flights", "transformed")
    ap.add_argument("--market", choices=markets, default="digits")
    ap.add_argument("--kinds", default="single,50/50,70/30")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    doms = market(rng, args.market)
    n_classes = int(max(d[0][1].max() for d in doms)) + 1
    std = TableStandardizer().fit(np.vstack([d[0][0] for d in doms]))
    gamma = default_gamma(doms[0][0][0].shape[1])
    models = [LogisticRegression(max_iter=2000).fit(std.transform(d[0][0]), d[0][1]) for d in doms]
    specs_ = [rkme_fit(std.transform(d[0][0]), K, gamma, random_state=i) for i, d in enumerate(doms)]
    Zs, betas = np.stack([s.Z_ for s in specs_]), np.stack([s.beta_ for s in specs_])
    m = len(doms)
    print(
        f"{'users':7s} {'n':>3s} {'mixt':>5s} {'route':>6s} {'average':>7s} {'soft':>6s} {'single':>6s} "
        f"{'before':>6s} "
        f"{'choice':>6s} {'best true':>9s} {'avg true':>8s}  choices / mean routing confidence"
    )
    for kind, share in (("single", 1.0), ("50/50", 0.5), ("70/30", 0.7)):
        if kind not in args.kinds.split(","):
            continue
        rows = []
        chosen: dict[str, int] = {}
        confs, tvs = [], []
        for t in range(args.users):
            a = t % m
            b = (a + 1 + t // m % (m - 1)) % m
            na = int(round(N_USER * share))
            (Xa, ya), (Xb, yb) = doms[a][1], doms[b][1]
            ia = rng.choice(Xa.shape[0], na, replace=False)
            ib = rng.choice(Xb.shape[0], N_USER - na, replace=False)
            X = std.transform(np.vstack([Xa[ia], Xb[ib]]))
            y = np.concatenate([ya[ia], yb[ib]])
            u = rkme_fit(X, K, gamma, random_state=t)
            ev = mixture_bootstrap_test(u.Z_, u.beta_, Zs, betas, gamma, n_samples=X.shape[0], rows=X, seed=t)
            outs = [union_probs(mo, X, n_classes) for mo in models]
            best_mmd = int(ev.mixture.indices[0])  # the greedy search starts from the best single by MMD
            single = acc(outs[best_mmd], y)
            truth = [a] if na == N_USER else [a, b]
            best_true = max(acc(outs[i], y) for i in truth)
            avg_true = acc(np.mean([outs[i] for i in truth], axis=0), y)
            if ev.significant and len(ev.mixture.indices) >= 2:
                comp = [int(i) for i in ev.mixture.indices]
                w = np.asarray(ev.mixture.weights, dtype=float)
                cZ, cb = [Zs[i] for i in comp], [betas[i] for i in comp]
                sel = RKMEJobSelector().fit(cZ, cb, gamma * choose_route_gamma_factor(cZ, cb, gamma).factor)
                route = acc(
                    np.take_along_axis(np.stack([outs[i] for i in comp], 1), sel.route(X)[:, None, None], 1)[
                        :, 0
                    ],
                    y,
                )
                soft_factor = choose_soft_route_gamma_factor(cZ, cb, gamma).factor
                soft = acc(
                    RKMESoftSelector(n_classes=n_classes)
                    .fit(cZ, cb, gamma * soft_factor)
                    .predict_proba([outs[i] for i in comp], X),
                    y,
                )
                uniform = acc(np.mean([outs[i] for i in comp], axis=0), y)
                average = acc(
                    WeightedEnsemble(n_classes=n_classes)
                    .fit([outs[i] for i in comp], weights=w)
                    .predict_proba([outs[i] for i in comp]),
                    y,
                )
                choice = label_free_choice(
                    sel.responsibilities(X), w, [[str(c) for c in models[i].classes_] for i in comp]
                )
                tvs.append(choice.disagreement)
                confs.append(choice.routing_confidence)
                got = {"rkme_soft_selector": soft, "best_single": single}[choice.method]
                chosen[choice.method] = chosen.get(choice.method, 0) + 1
                rows.append((1, route, average, soft, single, route, got, best_true, avg_true, uniform))
            else:
                chosen["best_single"] = chosen.get("best_single", 0) + 1
                rows.append((0, np.nan, np.nan, np.nan, single, single, single, best_true, avg_true, np.nan))
        r = np.array(rows, dtype=float)
        mean = np.nanmean(r, axis=0)
        print(
            f"{kind:7s} {len(rows):3d} {mean[0]:5.2f} {mean[1]:6.3f} {mean[2]:7.3f} {mean[3]:6.3f} "
            f"{mean[4]:6.3f} {mean[5]:6.3f} "
            f"{mean[6]:6.3f} {mean[7]:9.3f} {mean[8]:8.3f} uniform avg {mean[9]:.3f}  {chosen} "
            f"conf {np.mean(confs) if confs else float('nan'):.3f} TV max "
            f"{max(tvs) if tvs else float('nan'):.3f}  worst before/choice "
            f"{r[:, 5].min():.3f}/{r[:, 6].min():.3f}  choice - max(best true, avg true): "
            f"{gap(r[:, 6] - np.maximum(r[:, 7], r[:, 8]))}"
        )


if __name__ == "__main__":
    main()
