"""Index lifecycle rows: a generation counter per index and the change log behind it.

The database is the source of truth; FAISS indexes are derived. Every add or remove
bumps its index's ``generation`` and records which version it touched, so a process
holding generation g catches up by re-reading the versions touched after g. Rows older
than the latest snapshot (less a window) are pruned; ``pruned_generation`` says how far.
"""

from __future__ import annotations

import uuid

from django.db import models

TEXT_INDEX_KEY = "text:cards"  # not a valid FeatureSpace slug, so it never collides


class IndexState(models.Model):
    """One per index (a feature space's key, or TEXT_INDEX_KEY)."""

    key = models.CharField(max_length=140, unique=True)
    # Identifies this row's life: a database restored or flushed recreates it with a new epoch,
    # which tells every process that its cached index describes another database.
    epoch = models.UUIDField(default=uuid.uuid4, editable=False)
    generation = models.BigIntegerField(default=0)
    # Processes older than this generation must reload from the snapshot (a rebuild happened).
    rebuilt_generation = models.BigIntegerField(default=0)
    snapshot_name = models.CharField(max_length=300, blank=True)
    snapshot_generation = models.BigIntegerField(default=0)
    # IndexChange rows up to this generation are deleted: a process older than it reloads the snapshot.
    pruned_generation = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}@{self.generation}"


class IndexChange(models.Model):
    """Version ``version_id`` was added to or removed from index ``key`` at ``generation``."""

    key = models.CharField(max_length=140)
    generation = models.BigIntegerField()
    version_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "generation"], name="unique_index_change_generation")
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.generation}: v{self.version_id}"
