"""Streamed snapshots (format, round trips, a fresh process) and pruning of the change log."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from marketplace.search import index as index_module
from marketplace.search import store, vector_index
from marketplace.search.index import SpaceIndex
from marketplace.search.models import IndexChange, IndexState
from marketplace.search.services import index_snapshot
from marketplace.search.snapshot import ArrayReader, Column, write_arrays
from specs import RFFSketch, arrays_to_bytes, batch_self_terms, bytes_to_arrays
from specs.exceptions import SerializationError
from tests.marketplace.search.factories import cluster_spec, make_space, publish

D_FEAT, GAMMA = 4, 1.0 / 8


class _Recorder(io.BytesIO):
    """A stream that remembers the size of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:
        self.sizes.append(memoryview(data).nbytes)
        return super().write(data)


def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "b": rng.standard_normal((7, 3)).astype(np.float16),
        "a": np.arange(10, dtype=np.int64),
        "c": rng.integers(0, 255, size=(5, 4, 2)).astype(np.uint8),
        "empty": np.zeros((0, 3)),
    }


def test_streamed_arrays_are_the_bytes_of_arrays_to_bytes_and_read_back_in_chunks():
    arrays = _arrays(np.random.default_rng(0))
    header = {"kind": "x", "n": 3}
    out = io.BytesIO()
    columns = {k: Column(v.dtype, v.shape, lambda v=v: np.array_split(v, 3)) for k, v in arrays.items()}
    size = write_arrays(out, header, columns)
    assert out.getvalue() == arrays_to_bytes(header, arrays) and size == len(out.getvalue())
    head, back = bytes_to_arrays(out.getvalue())
    assert head == header and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    reader = ArrayReader(io.BytesIO(out.getvalue()))
    assert reader.header == header and reader.names == sorted(arrays)
    assert_array_equal(reader.read("a"), arrays["a"])
    assert_array_equal(np.concatenate(list(reader.chunks("b", 2))), arrays["b"])  # 4 chunks of <= 2 rows
    assert_array_equal(reader.read("c"), arrays["c"])  # "empty" comes after and is skipped by finish()
    reader.finish()


def test_stream_errors_name_the_problem():
    arrays = _arrays(np.random.default_rng(1))
    data = arrays_to_bytes({"kind": "x"}, arrays)
    with pytest.raises(SerializationError, match="stream ends inside array 'c'"):
        reader = ArrayReader(io.BytesIO(data[:-40]))
        [reader.read(name) for name in reader.names]
    reader = ArrayReader(io.BytesIO(data))
    reader.read("b")
    with pytest.raises(SerializationError, match="data order"):
        reader.read("a")
    bad = {"x": np.array([1.0, np.nan])}
    with pytest.raises(SerializationError, match="'x' contains NaN"):
        ArrayReader(io.BytesIO(arrays_to_bytes({}, bad))).read("x")
    with pytest.raises(SerializationError, match="chunks hold"):
        write_arrays(
            io.BytesIO(), {}, {"x": Column(np.dtype(np.float32), (4,), lambda: [np.zeros(3, np.float32)])}
        )
    with pytest.raises(SerializationError, match="trailing"):
        r = ArrayReader(io.BytesIO(data + b"xx"))
        r.finish()


@pytest.fixture(scope="module")
def small_space():
    rng = np.random.default_rng(2)
    centers = 3.0 * rng.standard_normal((6, D_FEAT))
    specs = [
        cluster_spec(rng, centers[i % 6 : i % 6 + 1], 6 + i % 5) for i in range(300)
    ]  # K varies: padded records
    Zs, betas = [s[0] for s in specs], [s[1] for s in specs]
    sketches = np.stack([RFFSketch(D_FEAT, GAMMA, 64, random_state=1).transform(Z, b) for Z, b in specs])
    st = np.concatenate([batch_self_terms(Z[None], b[None], GAMMA) for Z, b in specs])
    return Zs, betas, sketches, st, cluster_spec(rng, centers[2:4], 20)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
@pytest.mark.parametrize("disk_from,disk_to", [(False, False), (False, True), (True, False), (True, True)])
def test_a_space_snapshot_is_streamed_in_bounded_writes_and_round_trips(
    small_space, tmp_path, monkeypatch, dtype, disk_from, disk_to
):
    monkeypatch.setattr(index_module, "SNAPSHOT_ROWS", 16)
    monkeypatch.setattr(vector_index, "FLAT_MAX", 100)
    monkeypatch.setattr(vector_index, "REGROW_IN_BACKGROUND", False)
    Zs, betas, sketches, st, (Zq, bq) = small_space
    idx = SpaceIndex(D_FEAT, 64, GAMMA, store_dtype=dtype, store_dir=tmp_path if disk_from else None)
    idx.add(np.arange(300) + 5, sketches, Zs, betas, st)
    idx.remove(np.array([7, 100]))
    idx.generation = 41
    out = _Recorder()
    idx.write_snapshot(out)
    record = index_module.record_dtype(D_FEAT, idx.store.K, dtype).itemsize
    store_bytes = len(idx) * record
    header_write, faiss_write, *store_writes = out.sizes  # the store goes out in chunks, never whole
    assert sum(store_writes) == store_bytes and len(store_writes) == -(-len(idx) // 16)
    assert max(store_writes) == 16 * record
    clone = SpaceIndex.read_snapshot(io.BytesIO(out.getvalue()), store_dir=tmp_path if disk_to else None)
    assert clone.store.on_disk == disk_to and clone.generation == 41 and not clone.sketches.is_flat()
    assert sorted(clone.store.row) == sorted(idx.store.row) and 7 not in clone and 100 not in clone
    q = RFFSketch(D_FEAT, GAMMA, 64, random_state=1).transform(Zq, bq)[None]
    a, b = idx.rerank(Zq, bq, *idx.candidates(q, 50)), clone.rerank(Zq, bq, *clone.candidates(q, 50))
    assert_array_equal(a.ids, b.ids)
    assert_allclose(a.mmd2, b.mmd2, rtol=1e-12)
    assert clone.to_bytes() == out.getvalue()  # the same bytes whichever store holds it


def test_a_version_1_snapshot_still_loads(small_space):
    """v1 wrote one array per store column; v2 readers accept it."""
    Zs, betas, sketches, st, (Zq, bq) = small_space
    idx = SpaceIndex(D_FEAT, 64, GAMMA)
    idx.add(np.arange(300), sketches, Zs, betas, st)
    header = {
        "format": "lwm-search-index",
        "version": 1,
        "kind": "space",
        "d": D_FEAT,
        "D": 64,
        "gamma": GAMMA,
        "dtype": "float16",
        "generation": 3,
    }
    arrays = {f"store.{k}": v for k, v in idx.store.arrays().items()}
    arrays["faiss"] = np.frombuffer(idx.sketches.to_bytes(), dtype=np.uint8)
    clone = SpaceIndex.from_bytes(arrays_to_bytes(header, arrays))
    q = RFFSketch(D_FEAT, GAMMA, 64, random_state=1).transform(Zq, bq)[None]
    assert_array_equal(
        clone.rerank(Zq, bq, *clone.candidates(q, 20)).ids, idx.rerank(Zq, bq, *idx.candidates(q, 20)).ids
    )
    assert clone.generation == 3


# -- on the database --------------------------------------------------------------------------


@pytest.fixture
def centers():
    return 4.0 * np.random.default_rng(5).standard_normal((12, D_FEAT))


def _disk(settings, tmp_path, disk: bool) -> None:
    settings.LWM_INDEX_DISK_MIN = 0 if disk else -1
    settings.LWM_INDEX_DIR = tmp_path / "index"


@pytest.mark.django_db
@pytest.mark.parametrize("disk", [False, True])
def test_index_snapshot_streams_to_storage_and_a_fresh_process_starts_from_it(
    alice, centers, monkeypatch, settings, tmp_path, disk
):
    _disk(settings, tmp_path, disk)
    rng = np.random.default_rng(6)
    space = make_space()
    versions = [
        publish(space, alice, *cluster_spec(rng, centers[i % 12 : i % 12 + 1], 10)) for i in range(20)
    ]
    live = store.get_index(space.key, space)
    monkeypatch.setattr(
        SpaceIndex, "to_bytes", lambda self: pytest.fail("a snapshot must be streamed, not built as bytes")
    )
    state = index_snapshot(key=space.key)
    assert state.snapshot_generation == 20
    from django.core.files.storage import storages

    with storages["default"].open(state.snapshot_name, "rb") as fh:
        header, arrays = bytes_to_arrays(fh.read())  # still the no-pickle safetensors layout
    assert header["version"] == 2 and header["n"] == 20 and set(arrays) == {"faiss", "store.records"}

    store.forget()  # a fresh process
    monkeypatch.setattr(store, "build_from_db", lambda *a, **k: pytest.fail("should start from the snapshot"))
    fresh = store.get_index(space.key, space)
    assert fresh is not live and fresh.store.on_disk == disk
    assert sorted(fresh.store.row) == sorted(v.id for v in versions) == sorted(live.store.row)
    Zq, bq = cluster_spec(rng, centers[4:5], 20)
    q = store.sketcher(space).transform(Zq, bq)[None]
    assert_array_equal(
        fresh.rerank(Zq, bq, *fresh.candidates(q, 20)).ids, live.rerank(Zq, bq, *live.candidates(q, 20)).ids
    )


@pytest.mark.django_db
def test_snapshots_prune_the_change_log_and_old_processes_reload(alice, centers, monkeypatch, settings):
    settings.LWM_INDEX_CHANGES_KEPT = 2
    rng = np.random.default_rng(7)
    space = make_space()
    first = [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 10)).id for i in range(3)]
    old = store.get_index(space.key, space)  # a process that stops at generation 3
    assert old.generation == 3
    store.forget()
    more = [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 10)).id for i in range(3, 8)]
    at_snapshot = store.get_index(space.key, space)  # a process at the snapshot's generation
    state = index_snapshot(key=space.key)
    assert state.snapshot_generation == 8 and state.pruned_generation == 6  # 8 - CHANGES_KEPT
    kept = sorted(IndexChange.objects.filter(key=space.key).values_list("generation", flat=True))
    assert kept == [7, 8]

    late = publish(space, alice, *cluster_spec(rng, centers[9:10], 10)).id  # generation 9
    loads = []
    real_load = store._load_snapshot
    monkeypatch.setattr(
        store, "_load_snapshot", lambda s: loads.append(s.snapshot_generation) or real_load(s)
    )
    monkeypatch.setattr(store, "build_from_db", lambda *a, **k: pytest.fail("no full scan"))
    caught_up = store.get_index(space.key, space)
    assert caught_up is at_snapshot and loads == []  # caught up on rows 9.., no reload
    assert sorted(caught_up.store.row) == sorted([*first, *more, late])

    store._CACHE[space.key] = old  # the process left at generation 3, older than the pruned range
    reloaded = store.get_index(space.key, space)
    assert loads == [8] and reloaded is not old and reloaded.generation == 9
    assert sorted(reloaded.store.row) == sorted([*first, *more, late])
    with pytest.raises(store.ChangesPruned):
        store.catch_up(old, space.key, 9)  # what a catch-up racing the prune sees
    assert IndexState.objects.get(key=space.key).pruned_generation == 6


@pytest.mark.django_db
def test_a_catch_up_that_races_a_prune_reloads_the_snapshot(alice, centers, monkeypatch, settings):
    settings.LWM_INDEX_CHANGES_KEPT = 0
    rng = np.random.default_rng(8)
    space = make_space()
    ids = [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 10)).id for i in range(4)]
    behind = store.get_index(space.key, space)  # generation 4
    ids += [publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 10)).id for i in range(4, 6)]
    real_catch_up, raced = store.catch_up, []

    def racing(index, key, target):
        if not raced:  # another worker snapshots + prunes between our state read and our row read
            raced.append(True)
            store._CACHE.pop(key)
            index_snapshot(key=key)
            store._CACHE[key] = index
        return real_catch_up(index, key, target)

    monkeypatch.setattr(store, "catch_up", racing)
    synced = store.get_index(space.key, space)
    assert raced and synced is not behind and synced.generation == 6
    assert sorted(synced.store.row) == sorted(ids)
