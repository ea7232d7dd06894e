"""Routing bandwidth of the RKME job selector on two data sets: fixed multiples of the
space's gamma against the bandwidth chosen by the likelihood of the user's own rows and the
product's rule (specs.assembly.route_bandwidth: leave-one-out self-routing of the members' RKME points).

Usage:
    .venv/bin/python benchmarks/route_bandwidth.py [--dataset digits|fashion|both]

Each data set is split into 5 domains by per-developer transforms (upright, mirrored,
upside-down, inverted, transposed), as in tests/support/market.py and the demo.
digits: sklearn's 1,797 8x8 images (64-d), the market's own arrays (models, RKMEs, rows).
fashion: Fashion-MNIST (Debian dataset-fashion-mnist), 3,000 training images 2x2
average-pooled to 14x14 (196-d), half for developers (a softmax regression and an RKME
K = 50 per domain, in the space's TableStandardizer coordinates, gamma = 1/(2d)), half for
users. Users: every pair of domains at shares 0.5 and 0.7, 800 rows each, routed over
the two true members with uniform weights. Printed: routing accuracy (row sent to the
member of its own domain) and accuracy of the routed prediction, mean and worst over the
users, per rule.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gzip  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scipy.special  # noqa: E402

from specs import TableStandardizer, rkme_fit  # noqa: E402
from specs.assembly.route_bandwidth import choose_route_gamma_factor  # noqa: E402
from specs.assembly.selector import RKMEJobSelector  # noqa: E402
from specs.kernels import default_gamma, squared_distances  # noqa: E402

DOMAINS = ("upright", "mirrored", "upside-down", "inverted", "transposed")
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
FIXED = (1.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0)
N_USER = 800


def likelihood_gamma(
    Zs: Sequence[Any],
    betas: Sequence[Any],
    X: Any,
    *,
    weights: Any = None,
    factors: Sequence[float] = tuple(2.0**k for k in range(-2, 11)),
) -> tuple[float, np.ndarray, np.ndarray]:
    """Bandwidth under which the rows X are most likely under the members' RKME mixture.

    The density of member i is the normalised Gaussian kernel density of its reduced set,
    ``p_i(x) = sum_j b_ij (gamma / pi)^(d/2) exp(-gamma ||x - z_ij||^2)`` with
    ``b_i = max(beta_i, 0) / sum max(beta_i, 0)`` (a reduced-set weight can be slightly
    negative; a density cannot), and the mixture is ``sum_i w_i p_i``. Candidates are
    ``factors * gamma_0`` with ``gamma_0 = 1 / median ||x - z||^2`` (the median heuristic
    between the rows and the points), so nothing depends on the data set's units.

    Parameters
    ----------
    Zs, betas : m arrays (K_i, d) and (K_i,)
    X : array-like of shape (n, d)
        The user's rows (unlabelled), in the RKMEs' coordinates.
    weights : array-like of shape (m,), optional
        Mixture weights; uniform when omitted. Members with weight 0 are left out.
    factors : sequence of float
        Multiples of ``gamma_0`` to try.

    Returns
    -------
    gamma : float
    gammas : ndarray of shape (len(factors),)
    mean_log_likelihood : ndarray of shape (len(factors),)
        Mean over the rows of ``log p(x)`` per candidate.
    """
    probe = RKMEJobSelector().fit(Zs, betas, 1.0, weights)
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2 or Xa.shape[0] == 0 or Xa.shape[1] != probe.Z_.shape[1]:
        raise ValueError(f"X has shape {Xa.shape}, the RKMEs have d={probe.Z_.shape[1]}")
    if len(factors) == 0 or min(factors) <= 0:
        raise ValueError("factors must be positive numbers, at least one")
    b = np.maximum(probe.beta_, 0.0)
    totals = np.bincount(probe.owner_, weights=b, minlength=probe.n_members_)
    if np.any(totals[probe.weights_ > 0] <= 0):
        raise ValueError("a member's RKME has no positive weight, so it defines no density")
    coef = probe.weights_[probe.owner_] * b / np.where(totals > 0, totals, 1.0)[probe.owner_]
    keep = coef > 0
    D = squared_distances(Xa, probe.Z_[keep])
    log_coef = np.log(coef[keep])
    gamma0 = 1.0 / max(float(np.median(D)), np.finfo(float).tiny)
    gammas = gamma0 * np.asarray(factors, dtype=np.float64)
    d = Xa.shape[1]
    ll = np.array(
        [
            float(np.mean(scipy.special.logsumexp(log_coef - g * D, axis=1))) + 0.5 * d * np.log(g / np.pi)
            for g in gammas
        ]
    )
    return float(gammas[int(np.argmax(ll))]), gammas, ll


def image_domain(img: np.ndarray, domain: str, top: float) -> np.ndarray:
    out = {
        "upright": img,
        "mirrored": img[:, :, ::-1],
        "upside-down": img[:, ::-1, :],
        "inverted": top - img,
        "transposed": img.transpose(0, 2, 1),
    }[domain]
    return np.ascontiguousarray(out.reshape(out.shape[0], -1), dtype=np.float64)


def softmax_model(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)


def build(dataset: str) -> dict:
    """Domains' developer models and RKMEs, and the users' images/labels (raw units)."""
    if dataset == "digits":
        import io

        import torch

        from tests.support.market import GAMMA, market_arrays, transform

        arrays = market_arrays()
        from specs import rkme_from_json

        rk = {d: rkme_from_json(arrays.rkmes[d]) for d in DOMAINS}

        def predictor(d):
            net = torch.jit.load(io.BytesIO(arrays.models[d])).eval()

            def f(X):
                with torch.no_grad():
                    return net(torch.tensor(X, dtype=torch.float32)).argmax(1).numpy()

            return f

        return {
            "gamma": GAMMA,
            "std": arrays.standardizer,
            "rkme": {d: (rk[d].Z_, rk[d].beta_) for d in DOMAINS},
            "predict": {d: predictor(d) for d in DOMAINS},
            "user_X": lambda d: transform(arrays.images[arrays.user_rows], d),
            "user_y": arrays.labels[arrays.user_rows],
        }
    with gzip.open(FASHION, "rb") as h:
        images = np.frombuffer(h.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION.with_name("train-labels-idx1-ubyte.gz"), "rb") as h:
        labels = np.frombuffer(h.read(), dtype=np.uint8, offset=8).astype(np.int64)
    rows = np.random.default_rng(0).choice(images.shape[0], 3000, replace=False)
    img = images[rows].astype(np.float64).reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
    y = labels[rows]
    dev, users = np.arange(1500), np.arange(1500, 3000)
    std = TableStandardizer().fit(np.vstack([image_domain(img[dev], d, 1.0) for d in DOMAINS]))
    d_dim = 196
    gamma = default_gamma(d_dim)
    rkme, predict = {}, {}
    for i, d in enumerate(DOMAINS):
        X = image_domain(img[dev], d, 1.0)
        spec = rkme_fit(std.transform(X), 50, gamma, random_state=i)
        rkme[d] = (spec.Z_, spec.beta_)
        predict[d] = softmax_model(X, y[dev]).predict
    return {
        "gamma": gamma,
        "std": std,
        "rkme": rkme,
        "predict": predict,
        "user_X": lambda d: image_domain(img[users], d, 1.0),
        "user_y": y[users],
    }


def evaluate(dataset: str) -> None:
    started = time.perf_counter()
    m = build(dataset)
    n_pool = m["user_y"].shape[0]
    rules = [f"{f:g}x gamma" for f in FIXED] + ["likelihood", "self-routing"]
    route_acc = {r: [] for r in rules}
    pred_acc = {r: [] for r in rules}
    chosen_factor = []
    self_chosen: list[float] = []
    for u, ((a, b), share) in enumerate(itertools.product(itertools.combinations(DOMAINS, 2), (0.5, 0.7))):
        rng = np.random.default_rng(1000 + u)
        idx = rng.choice(n_pool, N_USER, replace=False)
        n_a = round(share * N_USER)
        truth = np.r_[np.zeros(n_a, int), np.ones(N_USER - n_a, int)]
        X = np.vstack([m["user_X"](a)[idx[:n_a]], m["user_X"](b)[idx[n_a:]]])
        y = m["user_y"][idx]
        Xs = m["std"].transform(X)
        members = [m["rkme"][a], m["rkme"][b]]
        preds = [m["predict"][a](X), m["predict"][b](X)]
        g_lik, _, _ = likelihood_gamma([z for z, _ in members], [bb for _, bb in members], Xs)
        chosen_factor.append(g_lik / m["gamma"])
        self_factor = choose_route_gamma_factor(
            [z for z, _ in members], [bb for _, bb in members], m["gamma"]
        ).factor
        self_chosen.append(self_factor)
        for rule, g in [
            *((r, f * m["gamma"]) for r, f in zip(rules, FIXED, strict=False)),
            ("likelihood", g_lik),
            ("self-routing", self_factor * m["gamma"]),
        ]:
            route = RKMEJobSelector().fit([z for z, _ in members], [bb for _, bb in members], g).route(Xs)
            route_acc[rule].append(np.mean(route == truth))
            pred_acc[rule].append(np.mean(np.where(route == 0, preds[0], preds[1]) == y))
    print(
        f"\n== {dataset}: {len(route_acc[rules[0]])} two-domain users, {N_USER} rows, d={Xs.shape[1]}, "
        f"space gamma {m['gamma']:.5f}; {time.perf_counter() - started:.1f} s =="
    )
    print(
        f"likelihood-chosen gamma / space gamma: median {np.median(chosen_factor):.1f}, "
        f"range {min(chosen_factor):.1f}-{max(chosen_factor):.1f}"
    )
    factors, counts = np.unique(self_chosen, return_counts=True)
    chosen = {float(f): int(c) for f, c in zip(factors, counts, strict=True)}
    print("self-routing-chosen factors (factor: users):", chosen)
    print(f"{'rule':<14}{'routing mean':>14}{'routing worst':>15}{'accuracy mean':>15}{'accuracy worst':>16}")
    for r in rules:
        print(
            f"{r:<14}{np.mean(route_acc[r]):>14.3f}{np.min(route_acc[r]):>15.3f}"
            f"{np.mean(pred_acc[r]):>15.3f}{np.min(pred_acc[r]):>16.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("digits", "fashion", "both"), default="both")
    args = parser.parse_args()
    for name in ("digits", "fashion") if args.dataset == "both" else (args.dataset,):
        evaluate(name)


if __name__ == "__main__":
    main()
