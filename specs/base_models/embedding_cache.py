"""The on-disk cache of embeddings per (namespace, max_length, item hash), used by every base-model call.

A *namespace* names what computed the values. With the token limit and an item's content hash it
fully determines the stored value, so an entry is reused by any later run that asks for the same
key (:func:`cached_rows`). Callers choose their namespaces, and different callers may key the same
model differently: model selection's ranking keys a base by its digest alone (``version-<sha>`` /
``files-<digest>``), while the reuse pipeline's adapters key (base folder, adapter, pooling-call).
They share the folder and its size cap, not entries: a text embedded by one is embedded again by
the other.

Entries are ``.npy`` files read with ``allow_pickle=False``, written to a temporary file and renamed
(workers may write the same entry at once: a reader sees the old file, the new one, or none, never a
half-written one), and checked on read (dtype float32, the caller's shape, finite): a truncated,
foreign or wrong-shape file is a miss, recomputed and overwritten, never trusted.

The disk is best-effort: a write that fails (full disk, permissions) or a file another process
evicts right after it is written keeps the value in memory (when the instance has a memory layer)
and is logged once per instance; it never fails the caller's job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from specs.exceptions import InvalidDataError, InvalidParameterError

Key = tuple[str, int, str]  # (namespace, max_length, item hash)
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
STALE_TEMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died
logger = logging.getLogger(__name__)


def cache_namespace(*parts: str) -> str:
    """``parts`` joined as nested folders (``base/adapter/pooling-call``); each part must be a plain
    name (letters, digits, ``._+-``), so no key can point outside the cache's folder."""
    for part in parts:
        if not _PART.fullmatch(part):
            raise InvalidParameterError(f"cache namespace part {part!r} is not a plain name")
    return "/".join(parts)


class EmbeddingCache:
    """Embeddings (one float32 array per item) per (namespace, max_length, item hash).

    Parameters
    ----------
    directory : path, optional
        Also keep entries as ``.npy`` files there, so a later process reuses them; None keeps them in
        memory only.
    max_bytes : int, optional
        A cap on the directory's ``.npy`` files. When a write takes it over the cap, the least
        recently used files (a hit refreshes a file's mtime) are deleted until the directory holds at
        most ``EVICT_TO`` of the cap, so eviction runs once per many writes, not on every one. Other
        processes may share the directory: the size is re-read from disk when a write would cross the
        cap, and a file another process deleted is just a later miss. A folder walk costs one
        ``stat`` per entry, so an instance walks it once to learn its size, then at most once per
        ``evict_interval_s`` (when eviction cannot get under the cap, e.g. other processes keep
        writing, later writes do not each walk it again). None: no cap.
    memory_items : int, optional
        At most this many entries also kept in memory (least recently used dropped first); 0: none
        (every hit reads its file), None: no bound. A long-lived worker's instance needs a bound.
    evict_interval_s : float
        The least time between two eviction walks of one instance.

    Attributes
    ----------
    hits, misses : int
        Lookups answered from the cache / not.
    rejected : int
        Files that could not be read or did not hold the expected array (counted as misses too):
        damaged entries, which a sound disk and atomic renames never produce.
    write_failures : int
        Writes that did not reach the disk (the first is logged as a warning).
    evicted, scans : int
        Files this instance deleted to stay under ``max_bytes`` / walks of the folder it made.
    """

    EVICT_TO = 0.8

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        max_bytes: int | None = None,
        memory_items: int | None = None,
        evict_interval_s: float = 30.0,
    ) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise InvalidParameterError(f"max_bytes must be positive, got {max_bytes}")
        if memory_items is not None and (memory_items < 0 or (memory_items == 0 and directory is None)):
            raise InvalidParameterError(
                f"memory_items must be >= 0 (> 0 without a directory), got {memory_items}"
            )
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = max_bytes
        self.memory_items = memory_items
        self.evict_interval_s = float(evict_interval_s)
        self._memory: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._disk_bytes: int | None = None  # read lazily; an estimate between evictions
        self._last_eviction: float | None = None  # time.monotonic() of the last eviction walk
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self.write_failures = 0
        self.evicted = 0
        self.scans = 0

    def _file(self, key: Key) -> Path | None:
        if self.directory is None:
            return None
        namespace, max_length, item = key
        cache_namespace(*namespace.split("/"), item)  # refuses a key that could leave the folder
        return self.directory / namespace / str(int(max_length)) / f"{item}.npy"

    def get(self, key: Key, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The entry, or None when absent or not a finite float32 array (of ``shape`` when given)."""
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
        path = self._file(key)
        if found is None and path is not None:
            found = self._read(path, shape)
            if found is not None:
                self._remember(key, found)
        if found is not None and shape is not None and found.shape != tuple(shape):
            found = None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def _read(self, path: Path, shape: tuple[int, ...] | None) -> np.ndarray | None:
        try:
            value = np.load(path, allow_pickle=False)
        except FileNotFoundError:  # never written, or evicted by another process
            return None
        except (OSError, ValueError, EOFError):  # truncated, not .npy, or an object array
            self.rejected += 1
            return None
        if (
            not isinstance(value, np.ndarray)
            or value.dtype != np.float32
            or (shape is not None and value.shape != tuple(shape))
            or not np.isfinite(value).all()
        ):
            self.rejected += 1
            return None
        if self.max_bytes is not None:
            with contextlib.suppress(OSError):  # gone, or read-only: it is just evicted sooner
                path.touch()  # recently used: the last to be evicted
        return value

    def _remember(self, key: Key, value: np.ndarray) -> None:
        if self.memory_items == 0:
            return
        self._memory[key] = value
        self._memory.move_to_end(key)
        while self.memory_items is not None and len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def put(self, key: Key, value: np.ndarray) -> None:
        """Store ``value``; a disk that refuses it is logged (once per instance), never raised."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        self._remember(key, value)
        path = self._file(key)
        if path is None:
            return
        temp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Same folder as the entry, so the rename is atomic; the suffix keeps it out of _files().
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                np.save(out, value, allow_pickle=False)
            os.replace(temp, path)
            temp = None
            if self.max_bytes is not None:
                # Another process's eviction may delete the file first: FileNotFoundError, an OSError.
                self._after_write(path.stat().st_size)
        except OSError as exc:
            self.write_failures += 1
            if self.write_failures == 1:
                logger.warning(
                    "embedding cache: %s not kept on disk (later runs recompute it): %s", path, exc
                )
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    Path(temp).unlink(missing_ok=True)

    def _files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every cached file, oldest first; removes stale temporary files."""
        assert self.directory is not None
        self.scans += 1
        found = []
        for path in self.directory.rglob("*"):
            try:
                stat = path.stat()
                if path.suffix == ".npy":
                    found.append((stat.st_mtime, stat.st_size, path))
                elif path.suffix == ".tmp" and stat.st_mtime < time.time() - STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
            except OSError:  # removed by another process meanwhile, or not ours to remove
                continue
        return sorted(found)

    def _after_write(self, size: int) -> None:
        assert self.max_bytes is not None
        if self._disk_bytes is None:
            self._disk_bytes = sum(s for _, s, _ in self._files())
        else:
            self._disk_bytes += size
        if self._disk_bytes <= self.max_bytes:
            return
        now = time.monotonic()
        if self._last_eviction is not None and now - self._last_eviction < self.evict_interval_s:
            return  # a recent walk could not get under the cap: no walk per write
        self._last_eviction = now
        files = self._files()
        total = sum(s for _, s, _ in files)
        target = int(self.max_bytes * self.EVICT_TO)
        for _, file_size, path in files:
            if total <= target:
                break
            try:
                path.unlink(missing_ok=True)
            except OSError:  # not ours to delete (permissions): counted as still there
                continue
            total -= file_size
            self.evicted += 1
        self._disk_bytes = total

    def __len__(self) -> int:
        return len(self._memory)


def cached_rows(
    cache: EmbeddingCache,
    namespace: str,
    max_length: int,
    items: Sequence[Any],
    keys: Sequence[str],
    shape: tuple[int, ...],
    compute: Callable[[list[Any]], np.ndarray],
) -> tuple[np.ndarray, int]:
    """(n, *shape) float32 values of ``items`` (content hashes ``keys``) and how many were computed:
    entries found in ``cache`` are reused, the others go through ``compute`` in one call (an item
    whose key repeats is computed once) and are stored.

    Raises
    ------
    InvalidDataError
        ``compute`` returned another shape than ``(misses, *shape)``.
    """
    found: dict[str, np.ndarray] = {}
    todo: dict[str, Any] = {}
    for item, key in zip(items, keys, strict=True):
        if key in found or key in todo:
            continue
        cached = cache.get((namespace, max_length, key), shape)
        if cached is None:
            todo[key] = item
        else:
            found[key] = cached
    if todo:
        computed = np.asarray(compute(list(todo.values())), dtype=np.float32)
        if computed.shape != (len(todo), *shape):
            raise InvalidDataError(
                f"the encoder returned shape {computed.shape}, expected {(len(todo), *shape)}"
            )
        for key, value in zip(todo, computed, strict=True):
            cache.put((namespace, max_length, key), value)
            found[key] = value
    return np.stack([found[k] for k in keys]), len(todo)
