"""Search index writes: add/remove published versions, snapshot, rebuild.

The database is the source of truth. ``index_add``/``index_remove`` record the change
(generation counter + change row, in one transaction, under a row lock on the index's
state) so concurrent publishers serialise on the counter and none is lost; every
process applies the change the next time it searches (``store.get_index``). Snapshots
are streamed to storage; writing one prunes the change rows it makes unneeded.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import storages
from django.db import transaction

from marketplace.core.exceptions import ValidationFailed
from marketplace.jobs.models import Job
from marketplace.learnwares.models import FeatureSpace, LearnwareVersion, Specification
from marketplace.search import store
from marketplace.search.models import TEXT_INDEX_KEY, IndexChange, IndexState

logger = logging.getLogger(__name__)


def _record_change(*, key: str, version_id: int) -> int:
    """Bump ``key``'s generation and log ``version_id`` against it; return the generation."""
    IndexState.objects.get_or_create(key=key)  # outside the lock: a racing creator is fine
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(key=key)
        state.generation += 1
        state.save(update_fields=["generation", "updated_at"])
        IndexChange.objects.create(key=key, generation=state.generation, version_id=version_id)
    if state.generation - state.snapshot_generation >= settings.LWM_INDEX_SNAPSHOT_EVERY:
        from workers.celery import send_task_on_commit

        send_task_on_commit("search.snapshot", args=[key], queue="compute")
    return state.generation


def _check_specification(specification: Specification) -> None:
    space = specification.feature_space
    expected = 4 * space.sketch_dim
    if specification.sketch is None or len(bytes(specification.sketch)) != expected:
        raise ValidationFailed(
            f"specification.sketch must be {space.sketch_dim} float32 values ({expected} bytes) for space "
            f"{space.key}",
            code="search:app:bad-sketch",
        )
    emb = specification.card_embedding
    if emb is not None and len(bytes(emb)) != 4 * store.CARD_DIM:
        raise ValidationFailed(
            f"specification.card_embedding must be {store.CARD_DIM} float32 values",
            code="search:app:bad-card-embedding",
        )
    Z, beta = store.rkme_arrays(specification.rkme)
    if Z.ndim != 2 or Z.shape[1] != space.dim or beta.shape != (Z.shape[0],):
        raise ValidationFailed(
            f"specification.rkme must have Z of shape (K, {space.dim}) and beta of shape (K,)",
            code="search:app:bad-rkme",
        )


def index_add(*, specification: Specification) -> None:
    """Make a published version's sketch and card embedding searchable (idempotent).

    The entry follows the rows: a version that is not (or no longer) published is
    left out when the indexes catch up, so calling this early or twice is harmless.

    Raises
    ------
    ValidationFailed
        The sketch, card embedding or RKME does not fit the feature space.
    """
    _check_specification(specification)
    _record_change(key=specification.feature_space.key, version_id=specification.version_id)
    _record_change(key=TEXT_INDEX_KEY, version_id=specification.version_id)


def index_remove(*, version: LearnwareVersion) -> None:
    """Take a yanked or deleted version out of every index (idempotent)."""
    spec = Specification.objects.filter(version=version).select_related("feature_space").first()
    if spec is not None:
        _record_change(key=spec.feature_space.key, version_id=version.id)
    _record_change(key=TEXT_INDEX_KEY, version_id=version.id)


def _space_for(key: str) -> FeatureSpace | None:
    return None if key == TEXT_INDEX_KEY else FeatureSpace.objects.get(key=key)


def _snapshot_name(key: str, generation: int) -> str:
    safe = key.replace(":", "_")
    return f"search/snapshots/{safe}/{generation:012d}-{uuid.uuid4().hex[:12]}.idx"


def _save_snapshot(key: str, write: Callable[[BinaryIO], int]) -> tuple[str, int]:
    """Stream a snapshot (``write(fh)`` returns its generation) to storage; returns (name, generation).

    It is written to an anonymous local file first (under ``LWM_INDEX_DIR/tmp``; disk, not RAM:
    ~13 GiB at 1M float16 specs), then handed to the storage, which copies it in chunks. A new
    key per snapshot and a pointer row moved afterwards: readers never see a partial file on
    local disk or S3 alike (S3 has no rename).
    """
    directory = Path(settings.LWM_INDEX_DIR) / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory) as tmp:
        generation = write(tmp)
        tmp.flush()
        tmp.seek(0)
        name = storages["default"].save(_snapshot_name(key, generation), File(tmp, name="snapshot.idx"))
    return name, generation


def prune_changes(*, key: str, snapshot_generation: int) -> int:
    """Delete ``key``'s change rows older than ``snapshot_generation`` less ``CHANGES_KEPT``.

    ``pruned_generation`` moves in the same transaction, so a process older than it reloads
    the snapshot instead of catching up on rows that are gone (``store.get_index``). Returns
    the rows deleted.
    """
    # Rows kept before the latest snapshot let a process a little behind catch up instead of reloading
    # the snapshot (a 1M-spec snapshot is ~13 GiB to stream).
    upto = snapshot_generation - settings.LWM_INDEX_CHANGES_KEPT
    if upto <= 0:
        return 0
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(key=key)
        if upto > state.pruned_generation:
            state.pruned_generation = upto
            state.save(update_fields=["pruned_generation", "updated_at"])
        deleted, _ = IndexChange.objects.filter(key=key, generation__lte=state.pruned_generation).delete()
    return deleted


def _delete_quietly(name: str) -> None:
    if name:
        try:
            storages["default"].delete(name)
        except OSError as exc:
            logger.warning("could not delete old snapshot %s: %s", name, exc)


def index_snapshot(*, key: str) -> IndexState:
    """Write this process's up-to-date copy of index ``key`` to storage and point the state at it."""
    space = _space_for(key)
    name, generation = _save_snapshot(key, lambda fh: store.write_snapshot(key, space, fh))
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(key=key)
        if state.snapshot_generation >= generation and state.snapshot_name:
            _delete_quietly(name)  # someone wrote a newer one meanwhile
            return state
        old, state.snapshot_name, state.snapshot_generation = state.snapshot_name, name, generation
        state.save(update_fields=["snapshot_name", "snapshot_generation", "updated_at"])
    transaction.on_commit(lambda: _delete_quietly(old))
    prune_changes(key=key, snapshot_generation=generation)
    state.refresh_from_db()
    return state


def index_rebuild(*, key: str) -> IndexState:
    """Rebuild index ``key`` from the database, snapshot it, and make every process reload it."""
    IndexState.objects.get_or_create(key=key)
    index = store.build_from_db(key, _space_for(key))

    def write(fh: BinaryIO) -> int:
        index.write_snapshot(fh)
        return index.generation

    name, _ = _save_snapshot(key, write)
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(key=key)
        old = state.snapshot_name
        state.generation += 1
        state.rebuilt_generation = state.generation
        state.snapshot_name, state.snapshot_generation = name, index.generation
        state.save()
    transaction.on_commit(lambda: _delete_quietly(old))
    store.forget(key)
    prune_changes(key=key, snapshot_generation=index.generation)
    state.refresh_from_db()
    return state


def index_keys() -> list[str]:
    """Every index the market has: one per feature space, plus the card-text index."""
    return [*FeatureSpace.objects.order_by("key").values_list("key", flat=True), TEXT_INDEX_KEY]


def search_job_create(
    *, user: Any, feature_space: str, name: str, content: bytes, params: dict[str, Any]
) -> Job:
    """Store a large data file and search with it in a worker (task ``search.by_data``); returns the job."""
    from marketplace.jobs.services import job_create, job_enqueue

    path = storages["default"].save(
        f"search/uploads/{uuid.uuid4().hex}/{Path(name).name or 'data.csv'}", ContentFile(content)
    )
    with transaction.atomic():
        job = job_create(kind="search.by_data", owner=user, message="waiting for a worker")
        job_enqueue(job=job, task_name="search.by_data", args=[feature_space, path, params], queue="compute")
    return job
