"""Which example tasks ``make demo`` runs: drawn users of measured task types, chosen by a stated rule.

``benchmarks/demo_tasks.py`` measures candidate task types over the demo's own catalogue (domain or
domain pair, number of labels, rows uploaded) with several users each, and writes ``demo/tasks.json``.
:func:`choose` reads those figures and picks the demo's tasks by the rule below, never by name;
:func:`draw_user` is the one way both the benchmark and the demo draw a user of a candidate.

The rule (each slot takes at most one candidate, a candidate fills at most one slot):

(a) ``no labels`` - what the market is for, for a user with rows only: among candidates without labels,
    the largest lower 95 % bound of (delivered - the most frequent class of the user's rows: nothing can
    be trained without labels, and that constant is an upper bound on guessing), if that bound is > 0;
(a') ``few labels`` - the same for a user with 1 to ``FEW_LABELS`` labels, against from scratch on
    those labels;
(b) ``mixture`` - a user whose rows come from two domains: among pair candidates, the largest share of
    users whose proposed mixture held both true domains (ties: the larger lower bound of the gain), if
    that share is > 0;
(c) ``honest`` - many labels: among candidates with at least ``MANY_LABELS`` labels whose measured
    verdict is "no detectable difference" or "worse", the smallest upper bound of the gain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demo.datasets import Domain

TASKS_FILE = Path(__file__).resolve().parent / "tasks.json"
N_ROWS = 200  # the user's unlabelled rows, on which the delivered module is scored
FEW_LABELS = 50
MANY_LABELS = 200
DEMO_SEED = 0  # the demo's user of a chosen type is the benchmark's first user of that type
VERDICTS = ("better", "no detectable difference", "worse")
SLOTS = ("no labels", "few labels", "mixture", "honest")


@dataclass(frozen=True)
class Choice:
    slot: str  # no labels | few labels | mixture | honest
    candidate: dict[str, Any]
    why: str


def verdict(low: float, high: float) -> str:
    """Three-way verdict of a difference from its 95 % interval."""
    return VERDICTS[0] if low > 0 else VERDICTS[2] if high < 0 else VERDICTS[1]


def draw_user(
    domains: list[Domain], labels: int, seed: int, n_rows: int = N_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A user of equal shares of ``domains``: ``n_rows`` unlabelled rows and ``labels`` labelled ones
    (disjoint, from the domains' user halves, never a developer's row); labels are class names."""
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, d in enumerate(domains):
        k = (n_rows + labels) // len(domains) + (1 if i < (n_rows + labels) % len(domains) else 0)
        pick = rng.choice(len(d.y_user), k, replace=False)
        names = np.asarray(d.classes)[d.y_user[pick]]
        X = np.asarray(d.X_user)[pick]
        cut = n_rows // len(domains) + (1 if i < n_rows % len(domains) else 0)
        parts.append((X[:cut], names[:cut], X[cut:], names[cut:]))
    X, y, X_l, y_l = (np.concatenate([p[j] for p in parts]) for j in range(4))
    order, order_l = rng.permutation(len(y)), rng.permutation(len(y_l))
    return X[order], y[order], X_l[order_l], y_l[order_l]


def load(path: Path = TASKS_FILE) -> dict[str, Any]:
    return json.loads(path.read_text())


def _figure(c: dict[str, Any], key: str) -> str:
    f = c[key]
    return f"{f['value']:+.2f} [{f['low']:+.2f}, {f['high']:+.2f}] over {f['n']} users"


def baseline(c: dict[str, Any]) -> str:
    """What the delivered module was compared with: without labels nothing can be trained."""
    return "from scratch" if c["labels"] else "the most frequent class"


def _describe(c: dict[str, Any]) -> str:
    return (
        f"delivered {c['delivered']['value']:.2f} vs {baseline(c)} {c['scratch']['value']:.2f}, "
        f"difference {_figure(c, 'gain')}: {c['verdict']}"
    )


def choose(doc: dict[str, Any]) -> list[Choice]:
    """The demo's tasks by the module's rule, each with the measured figure that chose it."""
    candidates = [c for c in doc["candidates"] if c["gain"]["n"] > 0]
    taken: set[str] = set()
    out: list[Choice] = []

    def take(slot: str, pool: list[dict[str, Any]], key: Any, why: str) -> None:
        pool = [c for c in pool if c["id"] not in taken]
        if pool:
            best = max(pool, key=key)
            taken.add(best["id"])
            out.append(Choice(slot, best, why.format(figures=_describe(best), c=best, base=baseline(best))))

    for slot, labelled in (("no labels", False), ("few labels", True)):
        take(
            slot,
            [
                c
                for c in candidates
                if bool(c["labels"]) == labelled and c["labels"] <= FEW_LABELS and c["gain"]["low"] > 0
            ],
            lambda c: c["gain"]["low"],
            f"the largest lower bound of (delivered - {{base}}) among users with "
            f"{'1 to ' + str(FEW_LABELS) if labelled else 'no'} labels: {{figures}}",
        )
    pairs = [c for c in candidates if len(c["domains"]) == 2 and (c.get("mixture_found") or {}).get("value")]
    take(
        "mixture",
        pairs,
        lambda c: (c["mixture_found"]["value"], c["gain"]["low"]),
        "a two-domain user whose mixture was found with both true domains in "
        "{c[mixture_found][value]:.0%} of users; {figures}",
    )
    many = [c for c in candidates if c["labels"] >= MANY_LABELS and c["verdict"] != VERDICTS[0]]
    take(
        "honest",
        many,
        lambda c: -c["gain"]["high"],
        f"the honest one: with >= {MANY_LABELS} labels reuse does not measurably beat from scratch; "
        "{figures}",
    )
    return out
