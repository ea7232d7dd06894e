"""The two-stage index against an exact linear MMD scan (no database)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from marketplace.search import vector_index
from marketplace.search.index import SpaceIndex
from marketplace.search.ram_store import RerankStore
from marketplace.search.text_index import TextIndex
from specs import RFFSketch, batch_self_terms, mmd_squared_batch

D_FEAT, K, N, GAMMA = 8, 20, 3000, 1.0 / 16


@pytest.fixture(scope="module")
def market():
    """N synthetic specs: each a K-point sample of a 1-3 component Gaussian mixture over 60 centres."""
    rng = np.random.default_rng(0)
    centers = 2.0 * rng.standard_normal((60, D_FEAT))
    comps = [rng.choice(60, size=rng.integers(1, 4), replace=False) for _ in range(N)]
    Zs = np.stack(
        [centers[c][rng.integers(len(c), size=K)] + 0.5 * rng.standard_normal((K, D_FEAT)) for c in comps]
    )
    betas = rng.dirichlet(np.full(K, 5.0), size=N)
    sketcher = RFFSketch(D_FEAT, GAMMA, 512, random_state=3)
    sketches = sketcher.transform_batch(Zs, betas)
    st = batch_self_terms(Zs, betas, GAMMA)
    queries = []
    for j in rng.choice(N, size=40, replace=False):  # fresh samples of a listed spec's distribution
        c = comps[j]
        Zq = centers[c][rng.integers(len(c), size=30)] + 0.5 * rng.standard_normal((30, D_FEAT))
        queries.append((Zq, np.full(30, 1 / 30)))
    return Zs, betas, sketches, st, sketcher, queries


def _build(market, **kw) -> SpaceIndex:
    Zs, betas, sketches, st, *_ = market
    idx = SpaceIndex(D_FEAT, 512, GAMMA, **kw)
    idx.add(np.arange(N) + 1000, sketches, list(Zs), list(betas), st)
    return idx


def _agreement(idx: SpaceIndex, market, k_prime: int = 100) -> tuple[float, float]:
    Zs, betas, _, st, sketcher, queries = market
    top1, recall = [], []
    for Zq, bq in queries:
        ids, dist = idx.candidates(sketcher.transform(Zq, bq)[None], k_prime)
        hits = idx.rerank(Zq, bq, ids, dist)
        exact = np.argsort(mmd_squared_batch(Zq, bq, Zs, betas, GAMMA, st), kind="stable") + 1000
        top1.append(hits.ids[0] == exact[0])
        recall.append(len(set(hits.ids[:10].tolist()) & set(exact[:10].tolist())) / 10)
    return float(np.mean(top1)), float(np.mean(recall))


def test_flat_two_stage_search_agrees_with_the_exact_scan(market):
    top1, recall = _agreement(_build(market), market)
    assert top1 == 1.0
    assert recall >= 0.95


def test_ivf_sq8_two_stage_search_agrees_with_the_exact_scan(market, monkeypatch):
    monkeypatch.setattr(vector_index, "FLAT_MAX", 1000)  # force the large-market index type
    idx = _build(market)
    assert idx.sketches.wait_regrow(120)  # the flat -> IVF conversion runs in a thread
    assert not idx.sketches.is_flat()
    top1, recall = _agreement(idx, market)
    assert top1 == 1.0
    assert recall >= 0.95


def test_int8_store_gives_the_same_ranking(market):
    top1, recall = _agreement(_build(market, store_dtype="int8"), market)
    assert top1 == 1.0
    assert recall >= 0.95


@pytest.mark.parametrize("dtype,rtol", [("float16", 2e-3), ("int8", 2e-2)])
def test_compact_store_mmd_matches_float64_within_quantisation_error(market, dtype, rtol):
    Zs, betas, _, st, _, queries = market
    store = RerankStore(D_FEAT, dtype)
    store.put(np.arange(50), list(Zs[:50]), list(betas[:50]), st[:50])
    Zq, bq = queries[0]
    Zc, bc, stc = store.gather(np.arange(50))
    exact = mmd_squared_batch(Zq, bq, Zs[:50], betas[:50], GAMMA, st[:50])
    assert_allclose(mmd_squared_batch(Zq, bq, Zc, bc, GAMMA, stc), exact, rtol=rtol, atol=1e-5)
    assert store.Z.itemsize == (1 if dtype == "int8" else 2)


def test_snapshot_round_trip_gives_identical_results(market):
    idx = _build(market)
    idx.generation = 17
    clone = SpaceIndex.from_bytes(idx.to_bytes())
    Zq, bq = market[5][0]
    q = market[4].transform(Zq, bq)[None]
    a, b = idx.rerank(Zq, bq, *idx.candidates(q, 100)), clone.rerank(Zq, bq, *clone.candidates(q, 100))
    assert clone.generation == 17
    assert_array_equal(a.ids, b.ids)
    assert_allclose(a.mmd2, b.mmd2)


def test_add_is_idempotent_and_remove_takes_ids_out(market):
    Zs, betas, sketches, st, sketcher, _ = market
    idx = SpaceIndex(D_FEAT, 512, GAMMA)
    for _ in range(2):
        idx.add(np.arange(10), sketches[:10], list(Zs[:10]), list(betas[:10]), st[:10])
    assert len(idx) == 10 and idx.sketches.ntotal == 10
    idx.remove(np.array([3, 3, 99]))
    ids, _ = idx.candidates(sketches[3][None], 10)
    assert 3 not in ids.tolist() and len(ids) == 9
    Zc, _, stc = idx.store.gather(np.array([9]))
    assert_allclose(Zc[0], Zs[9], atol=5e-3)  # the row moved into the hole is still itself
    assert_allclose(stc, st[9:10])


def test_id_selector_restricts_the_first_stage(market):
    idx = _build(market)
    allowed = np.array([1000 + 7, 1000 + 2500, 1000 + 42])
    ids, _ = idx.candidates(market[2][7][None], 10, allowed)
    assert sorted(ids.tolist()) == sorted(allowed.tolist())
    assert ids[0] == 1007


def test_text_index_returns_cosine_order():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((50, 384)).astype(np.float32)
    text = TextIndex()
    text.add(np.arange(50), emb)
    ids, sims = text.search(emb[12] + 0.01, 5)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    q = (emb[12] + 0.01) / np.linalg.norm(emb[12] + 0.01)
    assert_array_equal(ids, np.argsort(-(unit @ q))[:5])
    assert_allclose(sims, np.sort(unit @ q)[::-1][:5], rtol=1e-5)
    assert_array_equal(
        TextIndex.from_bytes(text.to_bytes()).search(emb[12], 5)[0], text.search(emb[12], 5)[0]
    )


def test_rerank_scores_equal_the_float64_mmd_of_the_stored_specs(market):
    idx = _build(market)
    Zs, betas, _, st, sketcher, queries = market
    Zq, bq = queries[3]
    hits = idx.rerank(Zq, bq, *idx.candidates(sketcher.transform(Zq, bq)[None], 100))
    exact = mmd_squared_batch(Zq, bq, Zs[hits.ids - 1000], betas[hits.ids - 1000], GAMMA, st[hits.ids - 1000])
    assert_allclose(hits.mmd2, exact, rtol=2e-3, atol=1e-6)
    assert (np.diff(hits.mmd2) >= 0).all()
