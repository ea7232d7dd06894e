"""Ranking candidates: per-layer scores are the estimators' own, and a model that can see the words
ranks above one that cannot."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from specs.base_models import (
    CachedLayerEmbedder,
    EmbeddingCache,
    LayerEmbedder,
    inspect_model_folder,
    rank_base_models,
)
from specs.base_models.ranking import LOGME_EPSILON
from specs.exceptions import InvalidDataError, InvalidParameterError
from specs.transferability import LogME, knn_accuracy, logme, regularized_hscore
from tests.specs.base_models.tiny_models import make_folder, make_model, save_folder

SPORT = ["team", "win", "game", "match", "player", "goal", "cup", "season", "coach"]
MONEY = ["market", "bank", "share", "price", "profit", "sales", "company", "economy"]


def task(n_per_class: int = 20, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Four-word texts (six tokens with [CLS]/[SEP]) of sport or money words."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(words, 4)) for words in (SPORT, MONEY) for _ in range(n_per_class)]
    return texts, np.repeat([0, 1], n_per_class)


@pytest.fixture
def candidates(tmp_path: Path) -> dict[str, LayerEmbedder]:
    """ "sees": a random encoder; "blind": the same with every word embedding equal, so texts of one
    length embed identically (nothing but chance can tell the classes apart)."""
    blind = make_model("bert", seed=0)
    with torch.no_grad():
        blind.embeddings.word_embeddings.weight[:] = blind.embeddings.word_embeddings.weight[5]
    cache = EmbeddingCache()
    folders = {
        "sees": inspect_model_folder(make_folder(tmp_path / "sees", seed=0)),
        "blind": inspect_model_folder(save_folder(blind, tmp_path / "blind")),
    }
    return {name: LayerEmbedder(folder, cache=cache) for name, folder in folders.items()}


def test_the_model_that_sees_the_words_ranks_first_on_every_estimator(
    candidates: dict[str, LayerEmbedder],
) -> None:
    texts, y = task()
    ranking = rank_base_models(candidates, texts, y)
    assert ranking.names == ["sees", "blind"] and ranking.n_samples == len(texts)
    for estimator in ("logme", "hscore", "knn"):
        for aggregation in ("mean", "best"):
            assert ranking.order(estimator, aggregation) == ["sees", "blind"], (estimator, aggregation)
    sees, blind = ranking.candidates
    assert sees.scores["knn"].best >= 0.9
    assert blind.scores["knn"].best <= 0.6
    assert (sees.combined, blind.combined) == (1.0, 0.0)


def test_every_layer_score_is_the_estimator_on_that_layer(candidates: dict[str, LayerEmbedder]) -> None:
    texts, y = task(seed=1)
    ranking = rank_base_models({"sees": candidates["sees"]} | {"blind": candidates["blind"]}, texts, y)
    layers = candidates["sees"].embed(texts).layers.astype(np.float64)
    sees = next(c for c in ranking.candidates if c.name == "sees")
    assert (sees.num_layers, sees.hidden_size, sees.digest) == (2, 32, candidates["sees"].folder.digest)

    def guarded_logme(F: np.ndarray, labels: np.ndarray) -> float:
        return LogME(epsilon=LOGME_EPSILON).fit(F, labels).score_

    for name, estimator in (("logme", guarded_logme), ("hscore", regularized_hscore), ("knn", knn_accuracy)):
        got = sees.scores[name]
        expected = [estimator(layer, y) for layer in layers]
        assert_allclose(got.layers, expected, rtol=1e-6)
        assert got.best == max(expected) and got.best_layer == int(np.argmax(expected))
        assert_allclose(got.layer_mean, estimator(layers.mean(axis=0), y), rtol=1e-6)


def test_logme_stays_bounded_when_the_sample_is_smaller_than_the_width(
    candidates: dict[str, LayerEmbedder],
) -> None:
    texts, y = task(n_per_class=8)
    # Each text twice: 16 distinct rows in 32 dimensions span the one-hot labels exactly (a small
    # labelled sample under a wide model), and the paper's evidence has no maximum.
    texts, y = texts + texts, np.concatenate([y, y])
    layers = candidates["sees"].embed(texts).layers.astype(np.float64)
    with pytest.raises(InvalidDataError, match="unbounded"):
        logme(layers[-1], y)
    ranking = rank_base_models(candidates, texts, y, estimators=("logme",), order_by=("logme", "best"))
    assert all(np.isfinite(c.scores["logme"].layers).all() for c in ranking.candidates)
    assert ranking.names == ["sees", "blind"]


def test_a_second_ranking_on_the_same_rows_runs_no_model(candidates: dict[str, LayerEmbedder]) -> None:
    texts, y = task()
    first = rank_base_models(candidates, texts, y, estimators=("knn",))
    assert [c.texts_encoded for c in first.candidates] == [len(set(texts))] * 2
    passes = [e.forward_passes for e in candidates.values()]
    # A sub-task of the same rows (another label set over a subset): all from the cache.
    subset = rank_base_models(candidates, texts[::2], np.arange(len(texts[::2])) % 2, estimators=("knn",))
    assert [c.texts_encoded for c in subset.candidates] == [0, 0]
    assert [e.forward_passes for e in candidates.values()] == passes


def test_order_by_a_single_estimator_and_the_best_layer(candidates: dict[str, LayerEmbedder]) -> None:
    texts, y = task()
    ranking = rank_base_models(candidates, texts, y, estimators=("hscore",), order_by=("hscore", "best"))
    assert ranking.order_by == ("hscore", "best") and ranking.names == ["sees", "blind"]
    # H-score alone has weight 0 in the market's weights: "combined" falls back to equal weights.
    assert [c.combined for c in ranking.candidates] == [1.0, 0.0]
    with pytest.raises(InvalidParameterError, match="aggregation 'best'"):
        ranking.order("combined", "mean")


def test_bad_arguments_are_refused(candidates: dict[str, LayerEmbedder]) -> None:
    texts, y = task()
    with pytest.raises(InvalidParameterError, match="estimators"):
        rank_base_models(candidates, texts, y, estimators=("accuracy",))
    with pytest.raises(InvalidParameterError, match="order_by"):
        rank_base_models(candidates, texts, y, order_by=("knn2", "mean"))
    with pytest.raises(InvalidParameterError, match="aggregation"):
        rank_base_models(candidates, texts, y, order_by=("knn", "last"))
    with pytest.raises(InvalidParameterError, match="at least one model"):
        rank_base_models({}, texts, y)
    with pytest.raises(InvalidDataError, match="two classes"):
        rank_base_models(candidates, texts, np.zeros(len(texts)))
    with pytest.raises(InvalidDataError, match="one label per text"):
        rank_base_models(candidates, texts, y[:-1])


class _SlowRandomEmbedder(CachedLayerEmbedder):
    """Random layer embeddings after a pause: ranking's time budget runs out during the first."""

    def __init__(self, seed: int) -> None:
        super().__init__(digest=f"slow-{seed}", num_layers=2, hidden_size=4, max_length=8, cache=None)
        self.rng = np.random.default_rng(seed)

    def _encode(self, texts: list[str]) -> np.ndarray:
        time.sleep(0.05)
        return self.rng.normal(size=(len(texts), 2, 4)).astype(np.float32)


def test_a_time_budget_skips_the_candidates_not_started_and_names_them():
    texts = [f"text {i}" for i in range(12)]
    y = np.arange(12) % 2
    embedders = {n: _SlowRandomEmbedder(i) for i, n in enumerate(["first", "second", "third"])}
    ranking = rank_base_models(embedders, texts, y, time_budget_s=0.01)
    assert ranking.names == ["first"] and ranking.skipped == ("second", "third")
    assert rank_base_models({n: _SlowRandomEmbedder(i) for i, n in enumerate("ab")}, texts, y).skipped == ()
