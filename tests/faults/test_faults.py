"""Faults on real services (their own PostgreSQL, Redis, S3 endpoint, gunicorn and workers):
a burst of uploads and submissions through the API while one part fails, then the invariants
(tests/faults/workload.py): every 202 ends final exactly once, nothing is left non-final, rows
and stored objects agree both ways, and every 5xx was a JSON 503 with Retry-After."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.faults.stack import Stack
from tests.faults.workload import (
    assert_5xx_were_json_503,
    assert_consistent,
    burst,
    remember_baseline,
    retry_failed,
)
from tests.support.services import wait_for

USER_OUTCOMES = ("succeeded", "rejected")  # what a job ends as when no fault outlasted its retries


def in_background(*steps: tuple[float, Callable[[], None]]) -> Callable[[], None]:
    """A fault that runs its steps (delay, action) in a thread, so requests keep flowing meanwhile."""

    def start() -> None:
        def run() -> None:
            for delay, action in steps:
                time.sleep(delay)
                action()

        threading.Thread(target=run, daemon=True).start()

    return start


def _no_infra_failures(states: dict) -> None:
    assert all(status in USER_OUTCOMES for status, _ in states.values()), states


def test_without_a_fault_every_upload_and_submission_ends_final(market: Stack):
    remember_baseline(market)
    outcomes = burst(market, uploads=3, submissions=2)
    assert [o.status for o in outcomes] == [202] * 5, [o.body for o in outcomes]
    _no_infra_failures(assert_consistent(market, outcomes))


def test_broker_killed_during_uploads_and_submissions_still_answers_202_and_loses_nothing(market: Stack):
    remember_baseline(market)
    outcomes = burst(market, uploads=4, submissions=2, fault=market.redis.kill, fault_after=0.5)
    # The job row is the outbox: the API commits and answers 202 whatever the broker's state
    # (the cache on the same Redis fails open for the throttles).
    assert [o.status for o in outcomes] == [202] * 6, [(o.status, o.body) for o in outcomes]
    waiting = market.sql(
        "SELECT count(*) FROM jobs_job WHERE status = 'pending' AND dispatched_at IS NULL "
        "AND message = 'queued, waiting for the broker'"
    )[0][0]
    assert waiting >= 1  # sent while the broker was down: kept, not dropped
    market.redis.start()
    _no_infra_failures(assert_consistent(market, outcomes))


def test_postgres_restarted_during_claims_answers_json_503_and_loses_nothing(market: Stack):
    remember_baseline(market)
    fault = in_background((1.5, lambda: market.pg.stop("immediate")), (2.0, market.pg.start))
    first = burst(market, uploads=5, submissions=3, fault=fault, fault_after=0.0, spacing=0.4)
    assert {o.status for o in first} <= {202, 503} and any(o.status == 503 for o in first), [
        (o.status, o.body) for o in first
    ]
    assert_5xx_were_json_503(first)
    outcomes = retry_failed(market, first)  # same Idempotency-Key: never a second version
    assert all(o.status == 202 for o in outcomes), [(o.status, o.body) for o in outcomes]
    _no_infra_failures(assert_consistent(market, outcomes))


def test_s3_refusing_during_publishes_is_retried_and_uploads_meanwhile_get_503(market: Stack):
    remember_baseline(market)
    fault = in_background(
        (1.0, lambda: market.proxy.set_mode("refuse")), (6.0, lambda: market.proxy.set_mode("pass"))
    )
    first = burst(market, uploads=5, submissions=2, fault=fault, fault_after=0.0, spacing=0.5)
    assert {o.status for o in first} <= {202, 503} and any(o.status == 503 for o in first), [
        (o.status, o.body) for o in first
    ]
    assert_5xx_were_json_503(first)
    outcomes = retry_failed(market, first)
    assert all(o.status == 202 for o in outcomes), [(o.status, o.body) for o in outcomes]
    _no_infra_failures(assert_consistent(market, outcomes))


def test_s3_hanging_is_cut_by_timeouts_and_probes_answer_within_2_s(market: Stack):
    remember_baseline(market)
    accepted = burst(market, uploads=3, submissions=1)
    market.proxy.set_mode("hang")
    try:
        start = time.monotonic()
        ready = requests.get(market.url("/readyz"), timeout=10)
        ready_seconds = time.monotonic() - start
        start = time.monotonic()
        listing = requests.get(market.url("/api/v1/learnwares/"), timeout=10)
        list_seconds = time.monotonic() - start
        live = requests.get(market.url("/livez"), timeout=2)
        during = burst(market, uploads=2, submissions=0)
    finally:
        market.proxy.set_mode("pass")
    assert ready.status_code == 503 and ready.json()["checks"]["storage"] is False and ready_seconds < 2.0, (
        ready_seconds
    )
    assert listing.status_code == 200 and list_seconds < 2.0, list_seconds  # reads that need no storage hold
    assert live.status_code == 200
    assert all(o.status == 503 and o.seconds < 15 for o in during), [(o.status, o.seconds) for o in during]
    assert_5xx_were_json_503(during)
    outcomes = retry_failed(market, accepted + during)
    _no_infra_failures(assert_consistent(market, outcomes))


def test_a_storage_outage_longer_than_the_retries_fails_with_a_clear_code_and_check_consistency_repairs(
    market: Stack,
):
    remember_baseline(market)
    for worker in market.workers:  # no worker may read the package before storage goes away
        worker.stop()
    market.workers.clear()
    outcomes = burst(market, uploads=1, submissions=0)
    assert outcomes[0].status == 202
    market.proxy.set_mode("refuse")
    market.start_worker()
    try:
        states = assert_consistent(market, outcomes)  # passes while storage is still down
    finally:
        market.proxy.set_mode("pass")
    ((status, error),) = states.values()
    assert (status, error["code"], error["details"]["part"]) == (
        "failed",
        "job:infra:storage-unavailable",
        "storage",
    ), error
    version = market.sql(
        "SELECT status, rejection_reasons, package FROM learnwares_learnwareversion ORDER BY id DESC LIMIT 1"
    )[0]
    assert version[0] == "rejected" and version[1][0]["code"] == "job:infra:storage-unavailable"
    # The package could not be deleted while storage was down; the check deletes it now.
    assert version[2] and version[2] in market.objects()
    report = market.manage("check_consistency", "--min-age", "0")
    assert '"rejected-version-with-file"' in report, report
    assert market.sql("SELECT package FROM learnwares_learnwareversion ORDER BY id DESC LIMIT 1")[0][0] == ""
    assert version[2] not in market.objects()
    assert '"findings": {}' in market.manage("check_consistency", "--dry-run", "--min-age", "0")


def test_worker_sigkilled_mid_burst_loses_nothing(market: Stack):
    remember_baseline(market)
    worker = market.workers[-1]
    fault = in_background((2.5, lambda: worker.stop(kill=True)), (1.0, market.start_worker))
    outcomes = burst(market, uploads=4, submissions=2, fault=fault, fault_after=0.0)
    assert all(o.status == 202 for o in outcomes)
    _no_infra_failures(assert_consistent(market, outcomes))


def _mount_tiny_tmpfs() -> Path:
    mountpoint = Path(tempfile.mkdtemp(prefix="lwm-faults-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=1777", "tmpfs", str(mountpoint)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.decode().strip()}"
        )
    return mountpoint


def _fill(mountpoint: Path) -> Path:
    """Write zeros until ENOSPC: from now on every write of the worker on its scratch disk fails."""
    filler = mountpoint / "filler"
    try:
        with open(filler, "wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    assert filler.exists(), (
        f"the scratch disk was already full: {sorted(p.name for p in mountpoint.iterdir())}"
    )
    return filler


def test_worker_disk_full_is_retried_until_space_returns(market: Stack):
    mountpoint = _mount_tiny_tmpfs()
    try:
        for worker in market.workers:
            worker.stop()
        market.workers.clear()
        market.start_worker(extra_env={"TMPDIR": str(mountpoint)})  # the worker's scratch space is 64 MB
        remember_baseline(market)
        filler = _fill(mountpoint)
        outcomes = burst(market, uploads=3, submissions=0)
        assert all(o.status == 202 for o in outcomes)
        # ENOSPC on the worker's own disk is transient: the jobs go back to the dispatcher with backoff.
        wait_for(
            lambda: market.sql(
                "SELECT 1 FROM jobs_job WHERE retries > 0 AND log::text LIKE '%%No space left%%'"
            ),
            timeout=90,
        )
        filler.unlink()
        _no_infra_failures(assert_consistent(market, outcomes))
    finally:
        for worker in market.workers:
            worker.stop()
        market.workers.clear()
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)  # the next test starts a plain worker
        shutil.rmtree(mountpoint, ignore_errors=True)
