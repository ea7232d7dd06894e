"""Load with and without faults: concurrent clients mixing browse, text search, search by data,
downloads, uploads and submissions against gunicorn + 2 Celery workers on services of its own
(PostgreSQL cluster, Redis, moto S3 behind a fault proxy: tests/faults/stack.py), loopback only.

    .venv/bin/python benchmarks/load.py                              # 20 clients, 180 s, no fault
    .venv/bin/python benchmarks/load.py --fault s3-hang --seconds 60 # a fault from 1/3 to 2/3 of the run
    .venv/bin/python benchmarks/load.py --fault all --seconds 60     # each fault in turn, one stack

Faults: none, broker (Redis killed), postgres (restarted), s3-refuse, s3-hang, worker-kill (SIGKILL).
Prints requests/s and p50/p95/p99 per operation, the status counts, and the invariants after the
run: every 202 final, nothing non-final, rows and objects agree, every 5xx a JSON 503. Figures,
not a timed test; bounded by --seconds and --clients.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.faults.stack import Stack, start_stack  # noqa: E402
from tests.faults.workload import COLUMNS, Outcome, assert_consistent, remember_baseline, retry_failed  # noqa: E402
from tests.support.packages import build_table_model_package, csv_text, table_data  # noqa: E402

FAULTS = ("none", "broker", "postgres", "s3-refuse", "s3-hang", "worker-kill")
MIX = [
    ("browse", 30),
    ("text_search", 20),
    ("search_by_data", 10),
    ("download", 20),
    ("upload", 10),
    ("submission", 10),
]


def _faulter(stack: Stack, fault: str) -> tuple[callable, callable]:  # type: ignore[valid-type]
    if fault == "broker":
        return stack.redis.kill, stack.redis.start
    if fault == "postgres":
        return (lambda: stack.pg.stop("immediate")), stack.pg.start
    if fault == "s3-refuse":
        return (lambda: stack.proxy.set_mode("refuse")), (lambda: stack.proxy.set_mode("pass"))
    if fault == "s3-hang":
        return (lambda: stack.proxy.set_mode("hang")), (lambda: stack.proxy.set_mode("pass"))
    if fault == "worker-kill":
        return (lambda: stack.workers[0].stop(kill=True)), (lambda: stack.start_worker())
    return (lambda: None), (lambda: None)


class Load:
    def __init__(self, stack: Stack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.downloads: list[str] = []
        self.space = ""

    def seed_market(self) -> None:
        """Three published learnwares to browse, search and download."""
        session = self.stack.http("alice")
        for i in range(3):
            session.post(
                self.stack.url("/api/v1/learnwares/"),
                timeout=30,
                files={
                    "package": ("p.zip", build_table_model_package(COLUMNS, name=f"load-seed-{i}", seed=i))
                },
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(self.downloads) < 3:
            rows = self.stack.sql(
                "SELECT learnware_id, number FROM learnwares_learnwareversion WHERE status = 'published'"
            )
            self.downloads = [f"/api/v1/learnwares/{lw}/versions/{n}/download" for lw, n in rows]
            time.sleep(1)
        spaces = session.get(self.stack.url("/api/v1/feature-spaces/"), timeout=10).json()
        items = spaces["results"] if isinstance(spaces, dict) else spaces
        self.space = items[0]["key"] if items else ""

    def one(self, op: str, client: int) -> None:
        session = self.stack.http("alice" if client % 2 else "bob")
        key = uuid.uuid4().hex
        start = time.monotonic()
        status, ctype, body, retry_after = 0, "", None, None
        try:
            if op == "browse":
                r = session.get(self.stack.url("/api/v1/learnwares/?limit=20"), timeout=30)
            elif op == "text_search":
                r = session.get(self.stack.url("/api/v1/search/?q=tiny+classification"), timeout=30)
            elif op == "search_by_data":
                data = csv_text(COLUMNS, table_data(COLUMNS, 30, seed=self.rng.randrange(1000)))
                r = session.post(
                    self.stack.url("/api/v1/search/by-data/"),
                    data={"feature_space": self.space, "k": 3},
                    files={"file": ("rows.csv", io.BytesIO(data.encode()))},
                    timeout=30,
                )
            elif op == "download":
                r = session.get(self.stack.url(self.rng.choice(self.downloads)), timeout=30)
            elif op == "upload":
                package = build_table_model_package(
                    COLUMNS, name=f"load-{key[:8]}", seed=self.rng.randrange(1000)
                )
                r = session.post(
                    self.stack.url("/api/v1/learnwares/"),
                    files={"package": ("p.zip", package)},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
            else:
                data = csv_text(COLUMNS, table_data(COLUMNS, 40, seed=self.rng.randrange(1000)))
                r = session.post(
                    self.stack.url("/api/v1/submissions/"),
                    data={"data_format": "csv"},
                    files={"data": ("rows.csv", io.BytesIO(data.encode()))},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
            status, ctype, retry_after = (
                r.status_code,
                r.headers.get("Content-Type", ""),
                r.headers.get("Retry-After"),
            )
            try:
                body = r.json() if ctype.startswith("application/json") else r.text[:200]
            except ValueError:
                body = r.text[:200]
        except Exception:  # noqa: BLE001 - a connection error counts as status 0
            pass
        seconds = time.monotonic() - start
        with self.lock:
            self.latency[op].append(seconds)
            self.status[op][status] += 1
            if op in ("upload", "submission") or status >= 500:
                self.outcomes.append(Outcome(op, key, status, ctype, body, retry_after, seconds))

    def run(self, *, clients: int, seconds: float, fault: str) -> None:
        ops, weights = zip(*MIX, strict=True)
        stop = time.monotonic() + seconds
        inject, heal = _faulter(self.stack, fault)

        def client(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < stop:
                op = rng.choices(ops, weights)[0]
                if op in ("upload", "submission") and rng.random() < 0.7:
                    op = "browse"  # keep the compute queue within what 2 workers on 2 cores drain
                self.one(op, i)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        if fault != "none":
            time.sleep(seconds / 3)
            inject()
            time.sleep(seconds / 3)
            heal()
        for t in threads:
            t.join()

    def report(self, title: str, seconds: float) -> None:
        print(f"\n== {title} ==")
        print(f"{'operation':16} {'n':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
        for op, _ in MIX:
            values = np.array(self.latency.get(op, [0.0])) * 1000
            n = len(self.latency.get(op, []))
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            statuses = " ".join(f"{s}:{c}" for s, c in sorted(self.status[op].items()))
            print(f"{op:16} {n:6d} {n / seconds:7.1f} {p50:8.0f} {p95:8.0f} {p99:8.0f}  {statuses}")
        total = sum(len(v) for v in self.latency.values())
        print(f"total {total} requests, {total / seconds:.1f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fault", choices=(*FAULTS, "all"), default="none")
    args = parser.parse_args()
    stack = start_stack(web_workers=3)
    try:
        stack.start_worker()  # two workers, as in production
        seeder = Load(stack, 0)
        seeder.seed_market()
        for op, _ in MIX:  # warm every web process (models, indexes) before measuring
            threads = [threading.Thread(target=seeder.one, args=(op, i)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for fault in FAULTS if args.fault == "all" else (args.fault,):
            load = Load(stack, 1)
            load.downloads, load.space = seeder.downloads, seeder.space
            remember_baseline(stack)
            load.run(clients=args.clients, seconds=args.seconds, fault=fault)
            load.report(f"fault: {fault}, {args.clients} clients, {args.seconds:.0f} s", args.seconds)
            creating = [o for o in load.outcomes if o.kind in ("upload", "submission")]
            errors = [o for o in load.outcomes if o.status >= 500]
            json_503 = sum(
                o.status == 503 and o.content_type.startswith("application/json") and bool(o.retry_after)
                for o in errors
            )
            print(
                f"5xx: {len(errors)}, of which JSON 503 with Retry-After: {json_503}; "
                f"client timeouts/connection errors: {sum(o.status == 0 for o in load.outcomes)}"
            )
            # What a client does: send again, same Idempotency-Key, what got no answer or a 503.
            creating = retry_failed(stack, creating)
            try:
                states = assert_consistent(stack, creating + errors)
                finals: dict[str, int] = defaultdict(int)
                for status, error in states.values():
                    finals[f"{status}{':' + error['code'] if error and status == 'failed' else ''}"] += 1
                print(f"invariants hold: {len(states)} accepted jobs final: {dict(finals)}")
            except AssertionError as exc:
                print(f"INVARIANT BROKEN: {exc!r}")
            if not any(w.process and w.process.poll() is None for w in stack.workers):
                stack.start_worker()
    finally:
        stack.destroy()


if __name__ == "__main__":
    main()
