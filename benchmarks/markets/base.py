"""What every benchmark market is: named domains, each with the developer's rows (to train a
learnware and send a sample) and disjoint users' rows (to draw user tasks from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "bench-cache"


@dataclass
class Domain:
    """One developer's domain. ``X_*`` are model inputs (table rows in the developer's units,
    images (n, 1, H, W) in [0, 1], or text embeddings); ``texts_user`` holds the raw texts of a
    text market's user rows (what a user uploads); labels are class names."""

    name: str
    classes: list[str]
    X_dev: np.ndarray
    y_dev: np.ndarray
    X_user: np.ndarray
    y_user: np.ndarray
    texts_dev: list[str] = field(default_factory=list)
    texts_user: list[str] = field(default_factory=list)


@dataclass
class MarketData:
    name: str
    modality: str  # table | image | text
    domains: dict[str, Domain]
    columns: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def classes(self) -> list[str]:
        """The union of every domain's classes, in first-seen order."""
        out: list[str] = []
        for d in self.domains.values():
            out += [c for c in d.classes if c not in out]
        return out


def split_domain(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    classes: list[str],
    n_dev: int,
    n_user: int,
    seed: int,
    texts: list[str] | None = None,
) -> Domain:
    """Shuffle one domain's rows (seeded) and cut them into the developer's and the users' parts."""
    perm = np.random.default_rng(seed).permutation(len(y))
    dev, user = perm[:n_dev], perm[n_dev : n_dev + n_user]
    pick = (lambda idx: [texts[i] for i in idx]) if texts is not None else (lambda idx: [])
    return Domain(name, classes, X[dev], y[dev], X[user], y[user], pick(dev), pick(user))
