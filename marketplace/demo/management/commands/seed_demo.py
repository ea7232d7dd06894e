"""``manage.py seed_demo --url URL``: train the demo learnwares and publish them through the API."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Seed the demo market (idempotent): train learnwares on real offline data, publish them via the API, run example tasks."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running market (web + worker)")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")
        parser.add_argument("--limit", type=int, default=None, help="seed only the first N learnwares (spread over the data sets)")
        parser.add_argument("--cache-dir", default=None, help="trained artefacts (default: VAR_DIR/demo-cache)")
        parser.add_argument("--skip-submissions", action="store_true", help="publish only; no example tasks")

    def handle(self, *args: Any, **opts: Any) -> None:
        from marketplace.demo.seed import Cache, Seeder, catalogue, import_client

        started = time.monotonic()
        # Quiet, offline model loading: the encoders are local folders; progress bars would drown the summary.
        for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                            ("TRANSFORMERS_VERBOSITY", "error")):
            os.environ.setdefault(name, value)
        lwm = import_client()
        client = lwm.Client(opts["url"], poll_interval=0.5)
        try:
            client.login(opts["username"], opts["password"], name="seed-demo", save=False)
        except lwm.LwmError as exc:
            raise CommandError(f"cannot log in to {opts['url']} as {opts['username']}: {exc}") from exc
        cache = Cache(Path(opts["cache_dir"] or Path(settings.VAR_DIR) / "demo-cache"))
        seeder = Seeder(client, cache, lambda line: self.stdout.write(line))
        domains = catalogue(opts["limit"])
        self.stdout.write(f"seeding {len(domains)} learnwares at {opts['url']} (cache: {cache.folder})")
        published = seeder.publish_all(domains, opts["username"])
        t_publish = time.monotonic() - started
        subs = [] if opts["skip_submissions"] else seeder.submissions(domains, opts["username"])
        self.summary(opts["url"], domains, published, subs, t_publish, time.monotonic() - started)
        failed = [n for n, e in published.items() if e["status"] != "published"]
        if failed:
            raise CommandError(f"{len(failed)} learnwares did not publish: {', '.join(failed)}")

    def summary(self, url: str, domains: list[Any], published: dict[str, Any], subs: list[dict[str, Any]],
                t_publish: float, total: float) -> None:
        out = self.stdout.write
        counts: dict[str, list[int]] = {}
        for d in domains:
            entry = published[d.name]
            kept = entry["outcome"] == "kept"
            c = counts.setdefault(f"{d.family} ({d.modality}, {d.task})", [0, 0, 0])
            c[0 if entry["status"] == "published" and not kept else 1 if kept else 2] += 1
        out("\n  data set / space                          new  kept  failed")
        for family, (new, kept, failed) in counts.items():
            out(f"  {family:40} {new:4} {kept:5} {failed:7}")
        ok = sum(1 for e in published.values() if e["status"] == "published")
        out(f"  {ok}/{len(published)} learnwares published in {t_publish:.0f} s; browse them at {url}/learnwares/")
        for s in subs:
            evaluation = (s.get("results") or {}).get("evaluate") or {}
            chosen = ((s.get("results") or {}).get("assemble") or {}).get("chosen", "-")
            out(f"\n  task '{s['name']}': {s['status']} ({s['outcome']}); method {chosen}")
            if evaluation.get("statement"):
                out(f"    {evaluation['statement']}")
            if s.get("id"):
                out(f"    {url}/tasks/{s['id']}/")
        out(f"\n  demo market seeded in {total:.0f} s")
