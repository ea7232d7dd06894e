"""The on-disk re-rank store against the in-RAM one (same API, same decoded values)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from marketplace.search.index import SpaceIndex
from marketplace.search.ram_store import RerankStore
from marketplace.search.rkme_store import DiskRerankStore
from specs import RFFSketch, batch_self_terms, mmd_squared_batch

D_FEAT, K, N, GAMMA = 8, 20, 600, 1.0 / 16


@pytest.fixture(scope="module")
def market():
    rng = np.random.default_rng(7)
    centers = 2.0 * rng.standard_normal((30, D_FEAT))
    comps = [rng.choice(30, size=rng.integers(1, 4), replace=False) for _ in range(N)]
    Zs = np.stack(
        [centers[c][rng.integers(len(c), size=K)] + 0.5 * rng.standard_normal((K, D_FEAT)) for c in comps]
    )
    betas = rng.dirichlet(np.full(K, 5.0), size=N)
    sketcher = RFFSketch(D_FEAT, GAMMA, 256, random_state=1)
    queries = [
        (Zs[j] + 0.3 * rng.standard_normal((K, D_FEAT)), np.full(K, 1 / K))
        for j in rng.choice(N, 10, replace=False)
    ]
    return (
        Zs,
        betas,
        sketcher.transform_batch(Zs, betas),
        batch_self_terms(Zs, betas, GAMMA),
        sketcher,
        queries,
    )


def _file_size(store: DiskRerankStore) -> int:
    return os.fstat(store.fd).st_size


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_disk_store_decodes_exactly_what_the_ram_store_holds(market, tmp_path, dtype):
    Zs, betas, _, st, *_ = market
    ram, disk = RerankStore(D_FEAT, dtype), DiskRerankStore(D_FEAT, dtype, tmp_path)
    for store in (ram, disk):
        store.put(np.arange(N), list(Zs), list(betas), st)
    ids = np.random.default_rng(0).permutation(N)[:150]  # unsorted: gather must keep the caller's order
    for a, b in zip(ram.gather(ids), disk.gather(ids, np.float64), strict=True):
        assert_array_equal(a, b)
    exact = mmd_squared_batch(Zs[0], betas[0], Zs[ids], betas[ids], GAMMA, st[ids])
    Zc, bc, stc = disk.gather(ids)
    assert_allclose(
        mmd_squared_batch(Zs[0], betas[0], Zc, bc, GAMMA, stc),
        exact,
        rtol=2e-2 if dtype == "int8" else 2e-3,
        atol=1e-5,
    )
    assert (
        disk.nbytes()
        == _file_size(disk)
        == N * (16 + 4 * K + 8 * D_FEAT + K * D_FEAT * (1 if dtype == "int8" else 2))
    )
    assert list(tmp_path.iterdir()) == []  # the file is anonymous: nothing is left behind


def test_disk_store_survives_remove_replace_and_re_add(market, tmp_path):
    Zs, betas, _, st, *_ = market
    ram, disk = RerankStore(D_FEAT), DiskRerankStore(D_FEAT, "float16", tmp_path)
    rng = np.random.default_rng(1)
    for store in (ram, disk):
        store.put(np.arange(300), list(Zs[:300]), list(betas[:300]), st[:300])
    gone = rng.choice(300, 120, replace=False)
    redo = np.concatenate([gone[:40], rng.choice(np.setdiff1d(np.arange(300), gone), 30, replace=False)])
    for store in (ram, disk):
        store.remove(np.concatenate([gone, [9999]]))
        store.put(
            redo, list(Zs[redo + 300]), list(betas[redo + 300]), st[redo + 300]
        )  # re-add/replace with other specs
    live = np.array(sorted(ram.row))
    assert len(disk) == len(ram) == 220 and sorted(disk.row) == live.tolist()
    assert _file_size(disk) == disk.nbytes()
    for a, b in zip(ram.gather(live), disk.gather(live), strict=True):
        assert_array_equal(a, b)
    assert_allclose(disk.gather(redo[:5])[2], st[redo[:5] + 300])


def test_disk_store_widens_its_records_for_a_larger_k(market, tmp_path):
    Zs, betas, _, st, *_ = market
    ram, disk = RerankStore(D_FEAT, "int8"), DiskRerankStore(D_FEAT, "int8", tmp_path, K=5)
    small_b = [b[:5] / b[:5].sum() for b in betas[:10]]
    small_st = batch_self_terms(Zs[:10, :5], np.stack(small_b), GAMMA)
    for store in (ram, disk):
        store.put(np.arange(10), [z[:5] for z in Zs[:10]], small_b, small_st)
        store.put(np.arange(10, 20), list(Zs[10:20]), list(betas[10:20]), st[10:20])
    assert disk.K == ram.K == K
    for a, b in zip(ram.gather(np.arange(20)), disk.gather(np.arange(20)), strict=True):
        assert_array_equal(a, b)


def _two_stage(idx: SpaceIndex, market) -> list:
    sketcher, queries = market[4], market[5]
    return [idx.rerank(Zq, bq, *idx.candidates(sketcher.transform(Zq, bq)[None], 50)) for Zq, bq in queries]


@pytest.mark.parametrize("disk_min", [0, 250])  # on disk from the start, or moved there at 250 specs
def test_space_index_on_disk_ranks_like_the_ram_index_and_snapshots_the_same_bytes(
    market, tmp_path, disk_min
):
    Zs, betas, sketches, st, *_ = market
    ram, disk = (
        SpaceIndex(D_FEAT, 256, GAMMA),
        SpaceIndex(D_FEAT, 256, GAMMA, store_dir=tmp_path, disk_min=disk_min),
    )
    for idx in (ram, disk):
        for lo in range(0, N, 200):
            idx.add(
                np.arange(lo, lo + 200),
                sketches[lo : lo + 200],
                list(Zs[lo : lo + 200]),
                list(betas[lo : lo + 200]),
                st[lo : lo + 200],
            )
        idx.remove(np.arange(0, N, 7))
    assert disk.store.on_disk and not ram.store.on_disk
    for a, b in zip(_two_stage(ram, market), _two_stage(disk, market), strict=True):
        assert_array_equal(a.ids, b.ids)
        assert_allclose(a.mmd2, b.mmd2, rtol=1e-12)
    assert disk.to_bytes() == ram.to_bytes()
    reloaded = SpaceIndex.from_bytes(ram.to_bytes(), store_dir=tmp_path, disk_min=0)
    assert reloaded.store.on_disk
    for a, b in zip(_two_stage(ram, market), _two_stage(reloaded, market), strict=True):
        assert_array_equal(a.ids, b.ids)
        assert_allclose(a.mmd2, b.mmd2, rtol=1e-12)
    assert not SpaceIndex.from_bytes(disk.to_bytes(), store_dir=tmp_path, disk_min=10**6).store.on_disk
