"""``manage.py rebuild_index [KEY ...]``: rebuild search indexes from the database and snapshot them."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from marketplace.search.services import index_keys, index_rebuild


class Command(BaseCommand):
    help = "Rebuild the FAISS indexes (all, or the given feature space keys / text:cards) from the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", help="index keys; default: every feature space and text:cards")

    def handle(self, *args: Any, **options: Any) -> None:
        for key in options["keys"] or index_keys():
            start = time.perf_counter()
            state = index_rebuild(key=key)
            self.stdout.write(
                f"{key}: generation {state.generation}, snapshot {state.snapshot_name} "
                f"({time.perf_counter() - start:.1f} s)"
            )
