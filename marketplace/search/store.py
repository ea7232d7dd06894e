"""Process-local copies of the indexes, kept in step with the database.

Each process holds at most one ``SpaceIndex`` per feature space and one ``TextIndex``.
Before a search it compares its generation with the row in ``IndexState``: after a
rebuild, on a cold start, or when the change rows it would need were pruned, it loads
the latest snapshot from storage (streamed), then re-reads only the versions touched
after the snapshot's generation. Rows are the truth, so replaying a touched version
means "make the index agree with its row now".

A space's re-rank store moves to local disk (``rkme_store.DiskRerankStore``, under
``settings.LWM_INDEX_DIR / "rkme"``) once it holds ``LWM_INDEX_DISK_MIN`` specs (default
200,000, ~2.4 GiB of float16 RKMEs at K = 100, d = 64); 0 puts every space on disk, a
negative value keeps every store in RAM.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, BinaryIO, cast

import numpy as np
from django.conf import settings
from django.core.files.storage import storages
from django.db.models import QuerySet

from marketplace.core.metrics import INDEX_ENTRIES
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import FeatureSpace, Specification
from marketplace.search.index import SpaceIndex
from marketplace.search.models import TEXT_INDEX_KEY, IndexChange, IndexState
from marketplace.search.text_index import TextIndex
from specs import RFFSketch

logger = logging.getLogger(__name__)

CARD_DIM = 384
_CACHE: dict[str, SpaceIndex | TextIndex] = {}
_EPOCHS: dict[str, object] = {}  # the IndexState epoch each cached index was synced against
_SKETCHERS: dict[str, RFFSketch] = {}
_LOCK = threading.RLock()  # one sync (or snapshot write) at a time per process
_RELOADS = 3  # snapshot loads tried when pruning races a catch-up, before a full build


def store_options() -> dict:
    """``store_dir``/``disk_min`` for ``SpaceIndex`` from the settings (see the module doc)."""
    disk_min = int(settings.LWM_INDEX_DISK_MIN)
    if disk_min < 0:
        return {"store_dir": None, "disk_min": 0}
    return {"store_dir": settings.LWM_INDEX_DIR / "rkme", "disk_min": disk_min}


def indexable_specs() -> QuerySet[Specification]:
    """Specifications whose version belongs in the indexes right now."""
    return Specification.objects.filter(
        version__status=VersionStatus.PUBLISHED, version__learnware__deleted_at__isnull=True
    )


def rkme_arrays(rkme: object) -> tuple[np.ndarray, np.ndarray]:
    """(Z, beta) of a stored RKME document (a dict, or its JSON text)."""
    doc: Any = json.loads(rkme) if isinstance(rkme, (str, bytes)) else rkme
    return np.asarray(doc["Z"], dtype=np.float64), np.asarray(doc["beta"], dtype=np.float64)


def sketcher(space: FeatureSpace) -> RFFSketch:
    """The space's seeded RFF map (the one its specs' sketches were made with)."""
    key = f"{space.key}:{space.dim}:{space.gamma!r}:{space.sketch_dim}:{space.sketch_seed}"
    if key not in _SKETCHERS:
        _SKETCHERS[key] = RFFSketch(space.dim, space.gamma, space.sketch_dim, random_state=space.sketch_seed)
    return _SKETCHERS[key]


def _empty(key: str, space: FeatureSpace | None) -> SpaceIndex | TextIndex:
    if key == TEXT_INDEX_KEY:
        return TextIndex(CARD_DIM)
    assert space is not None
    return SpaceIndex(space.dim, space.sketch_dim, space.gamma, **store_options())


def _apply(index: SpaceIndex | TextIndex, key: str, specs: list[Specification], gone: list[int]) -> None:
    if gone:
        index.remove(np.array(gone, dtype=np.int64))
    if isinstance(index, TextIndex):
        specs = [s for s in specs if s.card_embedding]
        if specs:
            emb = np.stack([np.frombuffer(bytes(s.card_embedding or b""), dtype=np.float32) for s in specs])
            index.add(np.array([s.version_id for s in specs]), emb)
        return
    if not specs:
        return
    arrays = [rkme_arrays(s.rkme) for s in specs]
    sketches = np.stack([np.frombuffer(bytes(s.sketch), dtype=np.float32) for s in specs])
    index.add(
        np.array([s.version_id for s in specs]),
        sketches,
        [a[0] for a in arrays],
        [a[1] for a in arrays],
        np.array([s.self_term for s in specs]),
    )


def _rows(key: str) -> QuerySet[Specification]:
    qs = indexable_specs()
    if key == TEXT_INDEX_KEY:
        return qs.filter(card_embedding__isnull=False).only("version_id", "card_embedding")
    return qs.filter(feature_space__key=key).only("version_id", "rkme", "sketch", "self_term")


def build_from_db(key: str, space: FeatureSpace | None, *, chunk: int = 2000) -> SpaceIndex | TextIndex:
    """A fresh index of every indexable row, tagged with the generation read before the scan."""
    generation = IndexState.objects.filter(key=key).values_list("generation", flat=True).first() or 0
    index = _empty(key, space)
    batch: list[Specification] = []
    for spec in _rows(key).order_by("version_id").iterator(chunk_size=chunk):
        batch.append(spec)
        if len(batch) >= chunk:
            _apply(index, key, batch, [])
            batch = []
    _apply(index, key, batch, [])
    index.generation = generation
    return index


class ChangesPruned(Exception):
    """The change rows a catch-up needs were pruned: reload from the snapshot instead."""


def _pruned_generation(key: str) -> int:
    return IndexState.objects.filter(key=key).values_list("pruned_generation", flat=True).first() or 0


def catch_up(index: SpaceIndex | TextIndex, key: str, target: int) -> None:
    """Re-read the versions touched in (index.generation, target] and apply them.

    Raises
    ------
    ChangesPruned
        Rows after ``index.generation`` were pruned (before or while they were read).
    """
    touched = set(
        IndexChange.objects.filter(
            key=key, generation__gt=index.generation, generation__lte=target
        ).values_list("version_id", flat=True)
    )
    # Pruning sets pruned_generation in the transaction that deletes the rows, so reading it
    # after the rows tells whether any of them were missing.
    if _pruned_generation(key) > index.generation:
        raise ChangesPruned(
            f"{key}: changes up to generation {_pruned_generation(key)} pruned, index at {index.generation}"
        )
    if touched:
        specs = list(_rows(key).filter(version_id__in=touched))
        present = {s.version_id for s in specs}
        if key == TEXT_INDEX_KEY:
            present = {s.version_id for s in specs if s.card_embedding}
        _apply(index, key, specs, sorted(touched - present))
    index.generation = target


def _load_snapshot(state: IndexState) -> SpaceIndex | TextIndex | None:
    if not state.snapshot_name:
        return None
    try:
        with storages["default"].open(
            state.snapshot_name, "rb"
        ) as fh:  # streamed: never the whole file in RAM
            stream = cast(BinaryIO, fh)  # a storage File reads like a binary file
            if state.key == TEXT_INDEX_KEY:
                return TextIndex.read_snapshot(stream)
            return SpaceIndex.read_snapshot(stream, **store_options())
    except (OSError, ValueError) as exc:
        # A snapshot replaced under our feet or unreadable: the database can always rebuild it.
        logger.warning(
            "snapshot %s of %s unusable (%s); building from the database", state.snapshot_name, state.key, exc
        )
        return None


def get_index(key: str, space: FeatureSpace | None = None) -> SpaceIndex | TextIndex:
    """This process's index ``key``, synced to the generation in the database.

    A process older than the last rebuild, or than the pruned change rows, reloads the
    snapshot (then catches up on the rows after it); otherwise it only catches up.
    """
    with _LOCK:
        local = _CACHE.get(key)
        for attempt in range(_RELOADS + 1):
            state = IndexState.objects.filter(key=key).first() or IndexState(key=key)
            epoch = state.epoch if state.pk else None
            stale = local is None or _EPOCHS.get(key) != epoch or local.generation > state.generation
            if (
                stale
                or local is None
                or local.generation < max(state.rebuilt_generation, state.pruned_generation)
            ):
                local = (_load_snapshot(state) if attempt < _RELOADS else None) or build_from_db(key, space)
            try:
                if local.generation < state.generation:
                    catch_up(local, key, state.generation)
                break
            except ChangesPruned as exc:  # a snapshot + prune landed between our reads: start again from it
                if attempt == _RELOADS:
                    raise
                logger.info("%s; reloading the snapshot", exc)
                local = None
        assert local is not None  # the loop breaks with an index or raises
        _CACHE[key], _EPOCHS[key] = local, epoch
        INDEX_ENTRIES.labels(key).set(len(local))
        return local


def space_index(space: FeatureSpace) -> SpaceIndex:
    """The RKME index of one feature space: ``get_index`` typed for the callers that search it."""
    index = get_index(space.key, space)
    if not isinstance(index, SpaceIndex):
        raise TypeError(f"index {space.key!r} is not a feature space's index")
    return index


def text_index() -> TextIndex:
    """The card-embedding index: ``get_index`` typed for the callers that search it."""
    index = get_index(TEXT_INDEX_KEY)
    if not isinstance(index, TextIndex):
        raise TypeError("the text index key holds a feature space's index")
    return index


def write_snapshot(key: str, space: FeatureSpace | None, fh: BinaryIO) -> int:
    """Sync this process's index ``key`` and stream it to ``fh``; returns its generation.

    Holds the process lock throughout, so no sync changes the index mid-write.
    """
    with _LOCK:
        index = get_index(key, space)
        index.write_snapshot(fh)
        return index.generation


def forget(key: str | None = None) -> None:
    """Drop this process's copy (all of them when ``key`` is None); the next search reloads."""
    with _LOCK:
        if key is None:
            _CACHE.clear()
            _EPOCHS.clear()
        else:
            _CACHE.pop(key, None)
            _EPOCHS.pop(key, None)
