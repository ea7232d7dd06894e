"""Issue 20's users on a benchmark market: 200 unlabelled rows + 50 labelled ones, single-domain
or two-domain (50/50 and 70/30), in the developers' units and (tables) in other units (every
column x0.1..x10). Also the oracle figures the targets compare with: each true learnware alone
and the average of the true pair, computed with the developers' models in their own units."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from benchmarks.markets.base import MarketData
from benchmarks.markets.developers import probabilities

N_ROWS, N_LABELLED = 200, 50


def _draw(
    market: MarketData, mix: dict[str, float], n: int, rng: np.random.Generator, used: dict[str, set[int]]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """n rows mixed by ``mix`` (largest remainder), never reusing a row of an earlier user."""
    counts = {d: int(round(w * n)) for d, w in mix.items()}
    counts[next(iter(mix))] += n - sum(counts.values())
    X, y, texts, origin = [], [], [], []
    for d, k in counts.items():
        dom = market.domains[d]
        free = np.setdiff1d(np.arange(dom.y_user.shape[0]), np.fromiter(used.setdefault(d, set()), int))
        pick = rng.choice(free, k, replace=False)
        used[d].update(pick.tolist())
        X.append(dom.X_user[pick])
        y += dom.y_user[pick].tolist()
        texts += [dom.texts_user[i] for i in pick] if dom.texts_user else []
        origin += [d] * k
    order = rng.permutation(n)
    X_all = np.concatenate(X)[order]
    return (
        X_all,
        np.asarray(y)[order],
        [texts[i] for i in order] if texts else [],
        list(np.asarray(origin)[order]),
    )


def make_tasks(market: MarketData, *, quick: bool, seed: int = 20) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    names = list(market.domains)
    singles = names[:2] if quick else names
    pairs = list(itertools.combinations(names, 2))
    if quick:
        pairs = [pairs[i] for i in np.random.default_rng(seed).choice(len(pairs), 2, replace=False)]
    mixes = [{d: 1.0} for d in singles] + [
        {a: (0.5 if i % 2 == 0 else 0.7), b: (0.5 if i % 2 == 0 else 0.3)} for i, (a, b) in enumerate(pairs)
    ]
    reps = 1 if quick else 2
    d = market.domains[names[0]].X_dev.reshape(market.domains[names[0]].X_dev.shape[0], -1).shape[1]
    units = np.exp(rng.uniform(np.log(0.1), np.log(10.0), d)) if market.modality == "table" else None
    tasks, used = [], {}
    for user, (mix, _rep) in enumerate(itertools.product(mixes, range(reps))):
        X, y, texts, origin = _draw(market, mix, N_ROWS, rng, used)
        X_l, y_l, texts_l, _ = _draw(market, mix, N_LABELLED, rng, used)
        base = {
            "market": market.name,
            "kind": "single" if len(mix) == 1 else "mixture",
            "mix": mix,
            "user": user,
            "X": X,
            "y": y,
            "texts": texts,
            "origin": origin,
            "X_l": X_l,
            "y_l": y_l,
            "texts_l": texts_l,
        }
        tasks.append({**base, "units": None})
        if units is not None:
            tasks.append({**base, "units": units})
    return tasks


def union_probabilities(
    market: MarketData, models: dict[str, bytes], domain: str, X: np.ndarray
) -> np.ndarray:
    """A learnware's probabilities spread over the market's union of classes (0 for classes it lacks)."""
    classes = market.classes
    own = market.domains[domain].classes
    p = probabilities(models[domain], X)
    full = np.zeros((X.shape[0], len(classes)))
    for j, c in enumerate(own):
        full[:, classes.index(c)] = p[:, j]
    return full


def oracle(market: MarketData, models: dict[str, bytes], task: dict[str, Any]) -> None:
    """The true learnwares alone, their average, and whether the pair is distinguishable
    (each domain's own learnware beats the other's on its rows by >= 5 points)."""
    classes = np.asarray(market.classes)
    X, y, origin = task["X"], task["y"], np.asarray(task["origin"])
    probs = {d: union_probabilities(market, models, d, X) for d in task["mix"]}
    acc = {d: float(np.mean(classes[p.argmax(1)] == y)) for d, p in probs.items()}
    task["member_acc"] = acc
    task["best_member"] = max(acc.values())
    task["own_acc"] = acc[next(iter(task["mix"]))] if task["kind"] == "single" else None
    task["average_acc"] = float(np.mean(classes[sum(probs.values()).argmax(1)] == y))
    if task["kind"] == "mixture":
        a, b = task["mix"]
        margins = []
        for own, other in ((a, b), (b, a)):
            rows = origin == own
            hits = [float(np.mean(classes[probs[d][rows].argmax(1)] == y[rows])) for d in (own, other)]
            margins.append(hits[0] - hits[1])
        task["distinguishable"] = min(margins) >= 0.05
