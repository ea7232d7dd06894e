"""``manage.py register_base_models``: create or update the registered base models (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.learnwares.services.spaces import base_models_register


class Command(BaseCommand):
    help = "Register the base models adapters may target (all-MiniLM-L6-v2); safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        for row in base_models_register():
            self.stdout.write(f"registered {row.key} ({row.name}, {row.hidden_size}-d)")
