"""Publish throughput: uploads/minute and p50/p95 upload -> published, with one and two workers.

Usage: ``.venv/bin/python benchmarks/publish_throughput.py [--n 100] [--workers 1 2]``

Runs the real stack on a throw-away var dir: the embedded defaults (SQLite + the
filesystem broker + local files) unless DATABASE_URL / CELERY_BROKER_URL are set.
Each worker is ``celery worker -c 1`` on the compute queue (OMP_NUM_THREADS=1,
torch threads 1 in the sandbox). Every worker first publishes one warm-up model (it
loads torch, the sandbox server and MiniLM for the card embedding), which is not
timed. Then ``n`` small table models (a Linear on 4 columns, a 200-row CSV sample,
so the worker computes the RKME) are uploaded through the upload service, and we
wait for every version to be published.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup_env(var_dir: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.base")
    os.environ.update(
        LWM_VAR_DIR=var_dir,
        DEBUG="1",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        LWM_RKME_K="20",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_workers(count: int, log_dir: str) -> list[subprocess.Popen[bytes]]:
    from marketplace.jobs.models import WorkerHeartbeat

    procs = []
    for i in range(count):
        log = open(Path(log_dir) / f"worker{i}.log", "ab")  # noqa: SIM115 - owned by the worker
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery",
                    "worker",
                    "-Q",
                    "compute,default",
                    "-c",
                    "1",
                    "-n",
                    f"bench{i}-{os.getpid()}@localhost",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "WARNING",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 120
    while (
        WorkerHeartbeat.objects.filter(hostname__startswith="bench").count() < count
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    import signal

    from marketplace.jobs.models import WorkerHeartbeat

    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # a warm shutdown may hang on torch threads: the numbers are in
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    WorkerHeartbeat.objects.all().delete()


def wait_all(version_ids: list[int], timeout: float) -> None:
    from marketplace.learnwares.choices import TERMINAL_VERSION_STATES
    from marketplace.learnwares.models import LearnwareVersion

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            LearnwareVersion.objects.filter(id__in=version_ids)
            .exclude(status__in=TERMINAL_VERSION_STATES)
            .count()
            == 0
        ):
            return
        time.sleep(0.5)
    raise RuntimeError("versions still not published after the timeout")


def upload_batch(user, tag: str, n: int) -> tuple[list[int], dict[int, float]]:
    from marketplace.learnwares.services import learnware_upload
    from tests.support.packages import build_table_model_package

    ids, sent = [], {}
    for i in range(n):
        data = build_table_model_package(
            columns=["f1", "f2", "f3", "f4"], sample="csv", rows=200, seed=i, name=f"{tag}-{i}"
        )
        _, version, _ = learnware_upload(user=user, data=data)
        ids.append(version.id)
        sent[version.id] = time.time()
    return ids, sent


def run(workers: int, n: int, user, log_dir: str) -> dict[str, float]:
    import numpy as np

    from marketplace.learnwares.models import LearnwareVersion

    procs = start_workers(workers, log_dir)
    try:
        warm, _ = upload_batch(user, f"warm{workers}", workers)
        wait_all(warm, 600)
        ids, sent = upload_batch(user, f"bench{workers}", n)
        wait_all(ids, 3600)
    finally:
        stop_workers(procs)
    rows = list(LearnwareVersion.objects.filter(id__in=ids).values_list("id", "status", "published_at"))
    published = [(vid, at.timestamp()) for vid, status, at in rows if status == "published"]
    latency = np.array([at - sent[vid] for vid, at in published])
    span = max(at for _, at in published) - min(sent.values())
    return {
        "workers": workers,
        "n": n,
        "published": len(published),
        "per_min": 60 * len(published) / span,
        "p50": float(np.percentile(latency, 50)),
        "p95": float(np.percentile(latency, 95)),
        "span": span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lwm-bench-", dir=ROOT / "var") as var_dir:
        setup_env(var_dir)
        import warnings

        warnings.simplefilter("ignore")
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pass-123")
        results = [run(w, args.n, user, var_dir) for w in args.workers]
    print(
        f"publish throughput: {args.n} table models (4 columns, 200-row CSV sample, K=20), "
        f"{os.cpu_count()} CPU cores, OMP_NUM_THREADS=1, "
        f"{'PostgreSQL' if 'DATABASE_URL' in os.environ else 'SQLite'} + "
        f"{'Redis' if 'CELERY_BROKER_URL' in os.environ else 'filesystem broker'}"
    )
    print(f"{'workers':>7} {'published':>9} {'uploads/min':>11} {'p50 s':>7} {'p95 s':>7} {'wall s':>7}")
    for r in results:
        print(
            f"{r['workers']:>7} {r['published']:>5}/{r['n']:<3} {r['per_min']:>11.1f} {r['p50']:>7.2f} "
            f"{r['p95']:>7.2f} {r['span']:>7.1f}"
        )
    if len(results) == 2:
        print(
            f"speed-up of {results[1]['workers']} workers over {results[0]['workers']}: "
            f"{results[1]['per_min'] / results[0]['per_min']:.2f}x"
        )


if __name__ == "__main__":
    main()
