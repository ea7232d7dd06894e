"""Fashion-MNIST, five developers on disjoint class pairs (each learnware knows 2 of the 10
classes): images (n, 1, 28, 28) in [0, 1]. Needs the Debian package dataset-fashion-mnist."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from benchmarks.markets.base import MarketData, split_domain

FOLDER = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
# Pairs a developer of one shop line would hold: tops, legwear/dresses, footwear, ... (disjoint).
GROUPS = {"tops": (0, 2), "lower": (1, 3), "outer": (4, 6), "shoes": (5, 7), "accessories": (8, 9)}


def _idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(FOLDER / name) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(*, quick: bool) -> MarketData:
    if not FOLDER.exists():
        raise FileNotFoundError(f"{FOLDER} is missing: apt-get install -y dataset-fashion-mnist")
    images = np.concatenate([_idx("train-images-idx3-ubyte.gz", 16), _idx("t10k-images-idx3-ubyte.gz", 16)])
    labels = np.concatenate([_idx("train-labels-idx1-ubyte.gz", 8), _idx("t10k-labels-idx1-ubyte.gz", 8)])
    images = images.reshape(-1, 1, 28, 28)
    domains = {}
    for i, (group, classes) in enumerate(GROUPS.items()):
        rows = np.flatnonzero(np.isin(labels, classes))
        X = images[rows].astype(np.float32) / 255.0
        y = np.asarray(NAMES)[labels[rows]]
        domains[group] = split_domain(
            group, X, y, classes=[NAMES[c] for c in classes], n_dev=3000, n_user=2000, seed=20 + i
        )
    return MarketData(
        "fashion", "image", domains, description="Fashion-MNIST, developers on disjoint class pairs"
    )
