"""The on-disk embedding cache: ``cached_rows`` computes only misses, a damaged entry is recomputed,
two processes writing one entry leave a readable file, stale temporary files and old entries go."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from specs.base_models import EmbeddingCache, cache_namespace, cached_rows, text_key
from specs.exceptions import InvalidDataError, InvalidParameterError

SHAPE = (3, 4)


def _values(texts: list[str]) -> np.ndarray:
    """An independent, text-dependent (n, 3, 4) float32 'embedding': each text's byte sum and length."""
    return np.stack(
        [np.full(SHAPE, sum(t.encode()) / 100.0, dtype=np.float32) + len(t) * np.eye(3, 4) for t in texts]
    ).astype(np.float32)


class Counter:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return _values(texts)


def _rows(cache: EmbeddingCache, texts: list[str], compute: Counter, ns: str = "base/none/mean-layers"):
    return cached_rows(cache, ns, 128, texts, [text_key(t) for t in texts], SHAPE, compute)


def test_only_misses_are_computed_once_and_a_later_process_reads_the_same_arrays(tmp_path: Path) -> None:
    compute = Counter()
    texts = ["a cat", "a dog", "a cat", "the bank"]
    first, computed = _rows(EmbeddingCache(tmp_path), texts, compute)
    assert computed == 3 and compute.calls == [["a cat", "a dog", "the bank"]]  # the repeat once
    np.testing.assert_array_equal(first, _values(texts))
    again, computed = _rows(EmbeddingCache(tmp_path), texts, compute)  # a fresh instance: from disk
    assert computed == 0 and len(compute.calls) == 1
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32
    _rows(EmbeddingCache(tmp_path), [*texts, "new"], compute)
    assert compute.calls[-1] == ["new"]
    _rows(EmbeddingCache(tmp_path), texts, compute, ns="base/sha256-ab/mean-layers")  # another adapter
    assert compute.calls[-1] == ["a cat", "a dog", "the bank"]


def _entry_files(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in root.rglob("*.npy")}


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:-7]),  # truncated
        lambda p: p.write_bytes(b"not an npy file"),
        lambda p: np.save(p, np.zeros((4, 3), dtype=np.float32)),  # wrong shape
        lambda p: np.save(p, np.zeros(SHAPE, dtype=np.float64)),  # wrong dtype
        lambda p: np.save(p, np.full(SHAPE, np.nan, dtype=np.float32)),  # not finite
        lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),  # a pickle
    ],
)
def test_a_damaged_entry_is_recomputed_and_rewritten(tmp_path: Path, damage) -> None:
    texts = ["one", "two", "three"]
    _rows(EmbeddingCache(tmp_path), texts, Counter())
    damage(_entry_files(tmp_path)[text_key("two")])
    compute = Counter()
    cache = EmbeddingCache(tmp_path)
    rows, computed = _rows(cache, texts, compute)
    assert computed == 1 and compute.calls == [["two"]] and cache.rejected == 1
    np.testing.assert_array_equal(rows, _values(texts))
    rows, computed = _rows(EmbeddingCache(tmp_path), texts, Counter())  # rewritten: a hit now
    assert computed == 0
    np.testing.assert_array_equal(rows, _values(texts))


def _writer(root: str, rounds: int, value: float) -> None:
    cache = EmbeddingCache(root)
    for _ in range(rounds):
        cache.put(("base/none/mean-layers", 128, text_key("shared")), np.full(SHAPE, value, dtype=np.float32))


def test_two_processes_writing_one_entry_leave_it_readable(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), 300, v)) for v in (1.0, 2.0)]
    for writer in writers:
        writer.start()
    reads = []
    while any(w.is_alive() for w in writers):  # a reader during the writes never sees half a file
        reader = EmbeddingCache(tmp_path)
        found = reader.get(("base/none/mean-layers", 128, text_key("shared")), SHAPE)
        assert reader.rejected == 0
        if found is not None:
            reads.append(float(found[0, 0]))
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    final = EmbeddingCache(tmp_path).get(("base/none/mean-layers", 128, text_key("shared")), SHAPE)
    assert final is not None and float(final[0, 0]) in (1.0, 2.0) and np.unique(final).size == 1
    assert set(reads) <= {1.0, 2.0}
    assert not list(tmp_path.rglob("*.tmp"))  # every temporary file was renamed


def test_eviction_removes_the_oldest_entries_and_stale_temporary_files(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(6)]
    _rows(EmbeddingCache(tmp_path), texts[:1], Counter())
    per_file = next(tmp_path.rglob("*.npy")).stat().st_size
    for i, path in enumerate(sorted(tmp_path.rglob("*.npy"))):
        os.utime(path, (1_000 + i, 1_000 + i))
    stale = tmp_path / "base" / ".leftover.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200,) * 2)
    fresh_temp = tmp_path / "base" / ".writing.tmp"
    fresh_temp.write_bytes(b"half")
    cache = EmbeddingCache(tmp_path, max_bytes=3 * per_file)
    for i, text in enumerate(texts[1:4], start=1):  # 4 files > 3: down to 0.8 x 3 = 2, oldest first
        _rows(cache, [text], Counter())
        os.utime(_entry_files(tmp_path)[text_key(text)], (1_000 + i, 1_000 + i))
    assert sorted(_entry_files(tmp_path)) == sorted(text_key(t) for t in texts[2:4])
    assert cache.evicted == 2 and not stale.exists() and fresh_temp.exists()
    compute = Counter()
    _rows(EmbeddingCache(tmp_path), texts[:4], compute)  # an evicted entry is recomputed
    assert compute.calls == [texts[:2]]


def test_bad_keys_and_shapes_are_refused(tmp_path: Path) -> None:
    for part in ("..", "a/b", "", ".hidden"):
        with pytest.raises(InvalidParameterError):
            cache_namespace("base", part)
    with pytest.raises(InvalidParameterError):
        EmbeddingCache(tmp_path).get(("../outside", 128, text_key("x")))
    with pytest.raises(InvalidDataError, match="expected"):
        cached_rows(EmbeddingCache(), "ns", 128, ["x"], [text_key("x")], (2, 4), _values)


@pytest.mark.parametrize("how", ["read-only", "a file in its place"])
def test_an_unwritable_folder_keeps_the_value_in_memory_and_logs_once(tmp_path: Path, caplog, how) -> None:
    root = tmp_path / "cache"
    if how == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder")
        root.mkdir()
        root.chmod(0o500)  # no writes: mkdir of the namespace fails with PermissionError
    else:
        root.write_bytes(b"")  # works as root too: mkdir under a file fails (NotADirectoryError)
    try:
        cache = EmbeddingCache(root, max_bytes=10**6)
        texts = ["one", "two", "three"]
        with caplog.at_level("WARNING", logger="specs.base_models.embedding_cache"):
            rows, computed = _rows(cache, texts, Counter())
        np.testing.assert_array_equal(rows, _values(texts))
        assert computed == 3 and cache.write_failures == 3 and not list(tmp_path.rglob("*.npy"))
        assert len([r for r in caplog.records if "not kept on disk" in r.getMessage()]) == 1
        again, computed = _rows(cache, texts, Counter())  # the memory layer answers
        assert computed == 0
        np.testing.assert_array_equal(again, _values(texts))
    finally:
        root.chmod(0o700)  # pytest removes it afterwards


def test_a_full_disk_leaves_no_temporary_file_and_fails_nothing(tmp_path: Path, monkeypatch) -> None:
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    cache = EmbeddingCache(tmp_path)
    rows, computed = _rows(cache, ["one"], Counter())
    np.testing.assert_array_equal(rows, _values(["one"]))
    assert computed == 1 and cache.write_failures == 1
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.npy"))


def test_a_file_evicted_by_another_worker_right_after_the_rename_fails_nothing(tmp_path, monkeypatch) -> None:
    import specs.base_models.embedding_cache as module

    replace = os.replace

    def then_evicted(src, dst):  # another process's eviction removes the file before our stat
        replace(src, dst)
        Path(dst).unlink()

    monkeypatch.setattr(module.os, "replace", then_evicted)
    cache = EmbeddingCache(tmp_path, max_bytes=10**6)
    rows, computed = _rows(cache, ["one", "two"], Counter())
    np.testing.assert_array_equal(rows, _values(["one", "two"]))
    assert computed == 2 and cache.write_failures == 2 and not list(tmp_path.rglob("*.npy"))
    assert len(cache) == 2  # kept in memory


def test_a_bounded_memory_layer_keeps_the_most_recent_entries(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(5)]
    cache = EmbeddingCache(tmp_path, memory_items=2)
    _rows(cache, texts, Counter())
    assert len(cache) == 2 and len(_entry_files(tmp_path)) == 5
    disk_only = EmbeddingCache(tmp_path, memory_items=0)
    rows, computed = _rows(disk_only, texts, Counter())
    assert computed == 0 and len(disk_only) == 0
    np.testing.assert_array_equal(rows, _values(texts))
    with pytest.raises(InvalidParameterError):
        EmbeddingCache(memory_items=0)  # no directory and no memory: nothing would be kept


def test_eviction_walks_are_rate_limited_when_the_cap_cannot_be_met(tmp_path: Path, monkeypatch) -> None:
    import specs.base_models.embedding_cache as module

    texts = [f"text {i}" for i in range(8)]
    _rows(EmbeddingCache(tmp_path), texts[:1], Counter())
    per_file = next(tmp_path.rglob("*.npy")).stat().st_size
    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    cache = EmbeddingCache(tmp_path, max_bytes=2 * per_file, evict_interval_s=30)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # nothing can be deleted
    for text in texts[1:4]:
        _rows(cache, [text], Counter())
    # one walk to learn the size, one eviction walk when the cap was crossed, none after: the walk
    # could not get under the cap, and 30 s have not passed
    assert cache.scans == 2
    clock[0] += 31
    _rows(cache, texts[4:5], Counter())
    assert cache.scans == 3
