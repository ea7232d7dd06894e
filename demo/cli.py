"""``python -m demo --url URL`` (the CLI behind ``demo/__main__.py``): train the demo learnwares and
publish them via the API.

A client program: it talks to a running market (web + worker) over HTTP with ``lwm_client``
and imports nothing of the server, so it lives beside the client, not in the server package.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from demo.seed import ROOT, Cache, Seeder, catalogue, import_client


class SeedError(Exception):
    """The demo market could not be seeded (login refused, learnwares that did not publish)."""


def default_cache_dir() -> Path:
    # The server's var/ (LWM_VAR_DIR) by default, so `make demo` keeps one cache across runs.
    return Path(os.environ.get("LWM_VAR_DIR") or ROOT / "var") / "demo-cache"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "Seed the demo market (idempotent): train learnwares on real offline data, publish them via the "
            "API, "
            "run example tasks."
        ),
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the running market (web + worker)")
    p.add_argument("--username", default="demo")
    p.add_argument("--password", default="demo-password")
    p.add_argument(
        "--limit", type=int, default=None, help="seed only the first N learnwares (spread over the data sets)"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="trained artefacts (default: $LWM_VAR_DIR/demo-cache or var/demo-cache)",
    )
    p.add_argument("--skip-submissions", action="store_true", help="publish only; no example tasks")
    return p


def seed(
    url: str,
    *,
    username: str = "demo",
    password: str = "demo-password",
    limit: int | None = None,
    cache_dir: Path | None = None,
    skip_submissions: bool = False,
    stdout: TextIO = sys.stdout,
) -> None:
    """Seed the market at ``url``; raises :class:`SeedError` when it cannot or when a learnware fails."""

    def out(line: str) -> None:
        stdout.write(line + "\n")

    started = time.monotonic()
    # Quiet, offline model loading: the encoders are local folders; progress bars would drown the summary.
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
    ):
        os.environ.setdefault(name, value)
    lwm = import_client()
    client = lwm.Client(url, poll_interval=0.5)
    try:
        client.login(username, password, name="seed-demo", save=False)
    except lwm.LwmError as exc:
        raise SeedError(f"cannot log in to {url} as {username}: {exc}") from exc
    cache = Cache(cache_dir or default_cache_dir())
    seeder = Seeder(client, cache, out)
    domains = catalogue(limit)
    out(f"seeding {len(domains)} learnwares at {url} (cache: {cache.folder})")
    published = seeder.publish_all(domains, username)
    t_publish = time.monotonic() - started
    subs = [] if skip_submissions else seeder.submissions(domains, username)
    summary(out, url, domains, published, subs, t_publish, time.monotonic() - started)
    failed = [n for n, e in published.items() if e["status"] != "published"]
    if failed:
        raise SeedError(f"{len(failed)} learnwares did not publish: {', '.join(failed)}")


def summary(
    out: Callable[[str], None],
    url: str,
    domains: list[Any],
    published: dict[str, Any],
    subs: list[dict[str, Any]],
    t_publish: float,
    total: float,
) -> None:
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
    out(
        f"  {ok}/{len(published)} learnwares published in {t_publish:.0f} s; browse them at {url}/learnwares/"
    )
    for s in subs:
        evaluation = (s.get("results") or {}).get("evaluate") or {}
        chosen = ((s.get("results") or {}).get("assemble") or {}).get("chosen", "-")
        out(f"\n  task '{s['name']}': {s['status']} ({s['outcome']}); method {chosen}")
        if s.get("why"):  # the measured figure that chose this task (demo/tasks.py, demo/tasks.json)
            out(f"    chosen as {s['why']}")
        if evaluation.get("statement"):
            out(f"    {evaluation['statement']}")
        if s.get("id"):
            out(f"    {url}/tasks/{s['id']}/")
    out(f"\n  demo market seeded in {total:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    try:
        seed(
            opts.url,
            username=opts.username,
            password=opts.password,
            limit=opts.limit,
            cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
            skip_submissions=opts.skip_submissions,
        )
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
