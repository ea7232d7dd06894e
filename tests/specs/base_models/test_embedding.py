"""Layer embeddings equal an independent computation, and the cache spares every second pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import specs.base_models.embedding as embedding_module
from specs.base_models import EmbeddingCache, LayerEmbedder, inspect_model_folder
from specs.exceptions import InvalidDataError, InvalidParameterError
from tests.specs.base_models.tiny_models import make_folder

TEXTS = [
    "the team win the cup",
    "bank share price and profit",
    "a film star and the band",
    "vote",
    "the minister of the government and the party win the vote in the election season",
]
FAMILIES = ["bert", "roberta", "mpnet", "distilbert", "electra", "deberta-v2"]


def by_hand(root: Path, texts: list[str], *, include_embeddings: bool = False) -> np.ndarray:
    """(L, n, h): each text alone (no padding), every hidden state averaged over its tokens."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(str(root)), AutoModel.from_pretrained(str(root)).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            assert tokenizer.unk_token_id not in ids  # every word is in the tiny vocabulary
            states = model(input_ids=ids, output_hidden_states=True).hidden_states
            states = states if include_embeddings else states[1:]
            rows.append(torch.stack([s[0].double().mean(dim=0) for s in states]).numpy())
    return np.stack(rows).transpose(1, 0, 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_embeddings_equal_hidden_states_pooled_by_hand(tmp_path: Path, family: str) -> None:
    root = make_folder(tmp_path / family, family, seed=3)
    # batch_size 2 puts texts of different lengths in one padded batch.
    got = LayerEmbedder(inspect_model_folder(root), batch_size=2).embed(TEXTS)
    assert got.layers.shape == (2, len(TEXTS), 32) and got.layers.dtype == np.float32
    assert got.texts_encoded == len(TEXTS)
    assert_allclose(got.layers, by_hand(root, TEXTS), rtol=1e-4, atol=2e-5)


def test_include_embeddings_adds_the_embedding_output_first(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m")
    got = LayerEmbedder(inspect_model_folder(root), include_embeddings=True).embed(TEXTS[:3])
    assert got.layers.shape == (3, 3, 32)
    assert_allclose(got.layers, by_hand(root, TEXTS[:3], include_embeddings=True), rtol=1e-4, atol=2e-5)


def test_a_cache_hit_runs_no_forward_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = inspect_model_folder(make_folder(tmp_path / "m"))
    embedder = LayerEmbedder(folder, batch_size=2)
    first = embedder.embed(TEXTS)
    passes = embedder.forward_passes
    assert passes == 3  # 5 texts in batches of 2
    # A fresh embedder on the same cache: the model must not even be loaded.
    monkeypatch.setattr(embedding_module, "load_text_encoder", lambda _folder: pytest.fail("model loaded"))
    again = LayerEmbedder(folder, cache=embedder.cache).embed(list(reversed(TEXTS)) + [TEXTS[0]])
    assert again.texts_encoded == 0
    assert_allclose(again.layers, first.layers[:, [4, 3, 2, 1, 0, 0]])
    assert embedder.cache.hits == len(TEXTS) and embedder.cache.misses == len(TEXTS)


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    embedder = LayerEmbedder(inspect_model_folder(make_folder(tmp_path / "m")), batch_size=8)
    embedder.embed(TEXTS[:3])
    mixed = embedder.embed(TEXTS)
    assert (mixed.texts_encoded, embedder.forward_passes) == (2, 2)
    assert_allclose(mixed.layers, by_hand(tmp_path / "m", TEXTS), rtol=1e-4, atol=2e-5)


def test_the_disk_cache_serves_a_later_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = inspect_model_folder(make_folder(tmp_path / "m"))
    first = LayerEmbedder(folder, cache=EmbeddingCache(tmp_path / "cache")).embed(TEXTS)
    monkeypatch.setattr(embedding_module, "load_text_encoder", lambda _folder: pytest.fail("model loaded"))
    later = LayerEmbedder(folder, cache=EmbeddingCache(tmp_path / "cache")).embed(TEXTS)
    assert later.texts_encoded == 0
    assert_allclose(later.layers, first.layers)


def test_keys_separate_models_lengths_and_layer_sets(tmp_path: Path) -> None:
    cache = EmbeddingCache()
    a = inspect_model_folder(make_folder(tmp_path / "a", seed=0))
    b = inspect_model_folder(make_folder(tmp_path / "b", seed=1))
    ea = LayerEmbedder(a, cache=cache).embed(TEXTS)
    eb = LayerEmbedder(b, cache=cache).embed(TEXTS)
    assert eb.texts_encoded == len(TEXTS) and not np.allclose(ea.layers, eb.layers)
    short = LayerEmbedder(a, cache=cache, max_length=4).embed(TEXTS)
    assert short.texts_encoded == len(TEXTS)
    # "the team win the cup" is 5 words + [CLS]/[SEP]: cut to 4 tokens it embeds differently.
    assert not np.allclose(short.layers[:, 0], ea.layers[:, 0])
    assert LayerEmbedder(a, cache=cache, include_embeddings=True).embed(TEXTS).texts_encoded == len(TEXTS)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    folder = inspect_model_folder(make_folder(tmp_path / "m"))
    with pytest.raises(InvalidDataError, match="non-empty sequence of strings"):
        LayerEmbedder(folder).embed([])
    with pytest.raises(InvalidDataError, match="non-empty sequence of strings"):
        LayerEmbedder(folder).embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidParameterError, match="max_length"):
        LayerEmbedder(folder, max_length=1)


def _entry(i: int) -> tuple[tuple[str, int, str], np.ndarray]:
    return ("digest", 128, f"{i:064x}"), np.full((2, 8), float(i), dtype=np.float32)


def test_a_capped_cache_evicts_the_least_recently_used_files(tmp_path):
    import os

    EmbeddingCache(tmp_path / "probe").put(*_entry(0))
    per_file = next((tmp_path / "probe").rglob("*.npy")).stat().st_size  # every entry has this size
    cache = EmbeddingCache(tmp_path / "cache", max_bytes=5 * per_file)
    for i in range(5):
        key, value = _entry(i)
        cache.put(key, value)
        path = cache._file(key)
        assert path is not None
        os.utime(path, (1_000 + i, 1_000 + i))  # distinct ages: 0 is the oldest
    assert cache.evicted == 0
    # A hit makes entry 0 the most recently used; a fresh instance reads it from disk.
    reader = EmbeddingCache(tmp_path / "cache", max_bytes=5 * per_file)
    np.testing.assert_array_equal(reader.get(_entry(0)[0]), _entry(0)[1])
    cache.put(*_entry(5))  # 6 files > 5: down to 0.8 x 5 = 4 files, oldest first (1 and 2)
    left = sorted(int(p.stem, 16) for p in (tmp_path / "cache").rglob("*.npy"))
    assert left == [0, 3, 4, 5]
    assert cache.evicted == 2
    assert sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.npy")) <= 5 * per_file
    # An evicted entry is a miss for a process that never held it in memory.
    fresh = EmbeddingCache(tmp_path / "cache")
    assert fresh.get(_entry(1)[0]) is None and fresh.misses == 1
    np.testing.assert_array_equal(fresh.get(_entry(3)[0]), _entry(3)[1])


def test_an_uncapped_cache_keeps_everything_and_a_bad_cap_is_refused(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    for i in range(20):
        cache.put(*_entry(i))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 20 and cache.evicted == 0
    with pytest.raises(InvalidParameterError):
        EmbeddingCache(tmp_path / "other", max_bytes=0)
