"""The IVF regrows with the space: retrained lists, no id lost, results still those of an exact scan."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from marketplace.search import vector_index
from marketplace.search.index import SpaceIndex
from marketplace.search.vector_index import ivf_nlist, ivf_nprobe
from specs import RFFSketch, batch_self_terms, mmd_squared_batch

D_FEAT, K, N, GAMMA, D_SKETCH = 8, 20, 3000, 1.0 / 16, 256


@pytest.fixture(scope="module")
def market():
    """N specs (K-point samples of 1-3 of 60 Gaussian centres) and 30 queries drawn like listed specs."""
    rng = np.random.default_rng(11)
    centers = 2.0 * rng.standard_normal((60, D_FEAT))
    comps = [rng.choice(60, size=rng.integers(1, 4), replace=False) for _ in range(N)]
    Zs = np.stack(
        [centers[c][rng.integers(len(c), size=K)] + 0.5 * rng.standard_normal((K, D_FEAT)) for c in comps]
    )
    betas = rng.dirichlet(np.full(K, 5.0), size=N)
    sketcher = RFFSketch(D_FEAT, GAMMA, D_SKETCH, random_state=4)
    queries = []
    for j in rng.choice(N, size=30, replace=False):
        c = comps[j]
        Zq = centers[c][rng.integers(len(c), size=30)] + 0.5 * rng.standard_normal((30, D_FEAT))
        queries.append((Zq, np.full(30, 1 / 30)))
    return (
        Zs,
        betas,
        sketcher.transform_batch(Zs, betas),
        batch_self_terms(Zs, betas, GAMMA),
        sketcher,
        queries,
    )


@pytest.fixture
def small_thresholds(monkeypatch):
    """Flat up to 300 specs, then IVF retrained at 1000 and 2000 (nlist = n // 39 at this size)."""
    monkeypatch.setattr(vector_index, "FLAT_MAX", 300)
    # The production rule scaled down: 12 of 25 lists, then 15 of 51 - not every list.
    monkeypatch.setattr(vector_index, "IVF_NPROBE_MIN", 1)
    monkeypatch.setattr(vector_index, "IVF_NPROBE_BASE", 12)
    monkeypatch.setattr(vector_index, "IVF_NLIST_BASE", 25)


def _add(idx: SpaceIndex, market, lo: int, hi: int) -> None:
    Zs, betas, sketches, st, *_ = market
    idx.add(np.arange(lo, hi) + 1000, sketches[lo:hi], list(Zs[lo:hi]), list(betas[lo:hi]), st[lo:hi])


def _agreement(idx: SpaceIndex, market, n: int) -> tuple[float, float]:
    """(top-1 agreement, recall@10) of the two-stage search against an exact scan of the first n specs."""
    Zs, betas, _, st, sketcher, queries = market
    top1, recall = [], []
    for Zq, bq in queries:
        hits = idx.rerank(Zq, bq, *idx.candidates(sketcher.transform(Zq, bq)[None], 100))
        exact = np.argsort(mmd_squared_batch(Zq, bq, Zs[:n], betas[:n], GAMMA, st[:n]), kind="stable") + 1000
        top1.append(hits.ids[0] == exact[0])
        recall.append(len(set(hits.ids[:10].tolist()) & set(exact[:10].tolist())) / 10)
    return float(np.mean(top1)), float(np.mean(recall))


def _held_ids(idx: SpaceIndex) -> np.ndarray:
    return np.sort(vector_index._contents(idx.sketches.index, idx.D)[1])


def test_nlist_and_nprobe_rules():
    assert ivf_nlist(50_001) == int(4 * np.sqrt(50_001))
    assert ivf_nlist(1000) == 1000 // 39  # small spaces: >= 39 training points per list
    assert ivf_nlist(1_000_000) == 4000
    nlists = [903, 1788, 3577, 7155]
    probes = [ivf_nprobe(n) for n in nlists]
    assert all(1 <= p <= n for p, n in zip(probes, nlists, strict=True))
    assert probes == sorted(probes)  # more lists never probe fewer
    assert ivf_nprobe(5) == 5


def test_contents_decodes_an_ivf_back_to_its_vectors(market):
    sketches = market[2][:2000]
    ids = np.arange(2000) * 7 + 3
    ivf = vector_index._ivf(sketches, ids)
    vectors, held = vector_index._contents(ivf, D_SKETCH)
    order = np.argsort(held)
    assert_array_equal(held[order], ids)
    span = sketches.max(axis=0) - sketches.min(axis=0)
    assert (np.abs(vectors[order] - sketches) <= span / 255 + 1e-6).all()  # within one SQ8 step


def test_ivf_regrows_as_the_space_grows_and_results_follow_the_exact_scan(
    market, small_thresholds, monkeypatch
):
    monkeypatch.setattr(vector_index, "REGROW_IN_BACKGROUND", False)
    idx = SpaceIndex(D_FEAT, D_SKETCH, GAMMA)
    nlists = []
    for hi in range(250, N + 1, 250):
        _add(idx, market, hi - 250, hi)
        if idx.sketches.nlist not in nlists:
            nlists.append(idx.sketches.nlist)
            top1, recall = _agreement(idx, market, hi)  # right after each retrain
            assert top1 == 1.0, (hi, idx.sketches.nlist)
            assert recall >= 0.95, (hi, idx.sketches.nlist, recall)
        assert idx.sketches.ntotal == hi
    assert nlists == [
        0,
        ivf_nlist(500),
        ivf_nlist(1000),
        ivf_nlist(2000),
    ]  # flat, converted at 500, regrown twice
    assert nlists[-1] >= 2 * nlists[-2] >= 4 * nlists[-3]
    assert ivf_nprobe(nlists[-1]) < nlists[-1]  # the recall below is not that of an exhaustive scan
    assert_array_equal(_held_ids(idx), np.arange(N) + 1000)
    top1, recall = _agreement(idx, market, N)
    assert top1 == 1.0
    assert recall >= 0.95


def test_changes_made_during_a_background_retrain_are_kept(market, small_thresholds, monkeypatch):
    """Adds, replacements and removes that land while the new IVF trains are replayed onto it."""
    gate, training = threading.Event(), threading.Event()
    real_ivf = vector_index._ivf

    def slow_ivf(vectors, ids, metric):
        training.set()
        assert gate.wait(30)
        return real_ivf(vectors, ids, metric)

    monkeypatch.setattr(vector_index, "_ivf", slow_ivf)
    idx = SpaceIndex(D_FEAT, D_SKETCH, GAMMA)
    _add(idx, market, 0, 250)
    _add(idx, market, 250, 500)  # crosses FLAT_MAX: the thread starts and blocks in slow_ivf
    assert training.wait(30)
    assert idx.sketches.is_flat()  # still serving from the flat index
    Zs, betas, sketches, st, sketcher, queries = market
    ids, _ = idx.candidates(sketches[[42]], 1)
    assert ids[0] == 1042  # searches keep working meanwhile
    _add(idx, market, 500, 700)
    idx.remove(np.arange(100, 150) + 1000)
    _add(idx, market, 120, 130)  # re-added after its removal
    idx.add(np.array([1007]), sketches[[9]], [Zs[9]], [betas[9]], st[[9]])  # 1007 now carries spec 9
    gate.set()
    assert idx.sketches.wait_regrow(60)
    assert not idx.sketches.is_flat()
    expected = np.setdiff1d(np.arange(700), np.r_[np.arange(100, 120), np.arange(130, 150)]) + 1000
    assert_array_equal(_held_ids(idx), expected)
    assert idx.sketches.ntotal == len(idx) == len(expected)
    ids, _ = idx.candidates(sketches[[9]], 2)
    assert set(ids.tolist()) == {1007, 1009}  # the replacement's sketch, not the old one
    ids, _ = idx.candidates(sketches[[7]], 5)
    assert 1007 not in ids.tolist()


def test_a_snapshot_with_too_few_lists_regrows_on_load(market, small_thresholds, monkeypatch):
    monkeypatch.setattr(vector_index, "REGROW_IN_BACKGROUND", False)
    idx = SpaceIndex(D_FEAT, D_SKETCH, GAMMA)
    _add(idx, market, 0, 500)
    _add(idx, market, 500, 700)
    old = idx.sketches.nlist
    monkeypatch.setattr(
        vector_index, "IVF_REGROW", 1.2
    )  # the code now wants more lists than the snapshot has
    clone = SpaceIndex.from_bytes(idx.to_bytes())
    assert clone.sketches.nlist == ivf_nlist(700) > old
    assert_array_equal(_held_ids(clone), np.arange(700) + 1000)
    top1, recall = _agreement(clone, market, 700)
    assert top1 == 1.0 and recall >= 0.95
