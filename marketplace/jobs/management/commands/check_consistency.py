"""``manage.py check_consistency``: report (and by default repair) drift between jobs, versions and files."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from marketplace.jobs.consistency import consistency_check


class Command(BaseCommand):
    help = "Find jobs, versions, submissions and stored files that disagree; repair what is safe to repair."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report only, change nothing")
        parser.add_argument("--no-files", action="store_true", help="skip the storage scan (rows only)")
        parser.add_argument(
            "--min-age",
            type=float,
            default=3600.0,
            help="delete objects without a row only when older than this many seconds (default 3600)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        report = consistency_check(
            repair=not opts["dry_run"], files=not opts["no_files"], min_age_seconds=opts["min_age"]
        )
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
