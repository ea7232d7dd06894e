"""Bursts of real requests against the fault stack, and the invariants checked after each fault."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from tests.faults.stack import Stack
from tests.support.packages import build_table_model_package, csv_text, table_data

COLUMNS = ("a", "b", "c")
FINAL_JOB_STATES = ("succeeded", "rejected", "failed", "cancelled")


@dataclass
class Outcome:
    kind: str  # "upload" or "submission"
    key: str  # the Idempotency-Key, reused when the request is retried
    status: int  # 0: no HTTP answer (connection error or client timeout)
    content_type: str = ""
    body: Any = None
    retry_after: str | None = None
    seconds: float = 0.0

    @property
    def job_id(self) -> str | None:
        if self.status != 202 or not isinstance(self.body, dict):
            return None
        job = self.body.get("job")
        return str(job["id"] if isinstance(job, dict) else job)


def _send(stack: Stack, kind: str, index: int, key: str) -> Outcome:
    session = stack.http("alice" if index % 2 == 0 else "bob")
    headers = {"Idempotency-Key": key}
    start = time.monotonic()
    try:
        if kind == "upload":
            package = build_table_model_package(COLUMNS, name=f"fault-model-{key[:8]}", seed=index)
            response = session.post(
                stack.url("/api/v1/learnwares/"),
                files={"package": ("p.zip", package)},
                headers=headers,
                timeout=30,
            )
        else:
            data = csv_text(COLUMNS, table_data(COLUMNS, 40, seed=100 + index))
            response = session.post(
                stack.url("/api/v1/submissions/"),
                files={"data": ("rows.csv", io.BytesIO(data.encode()))},
                data={"data_format": "csv", "name": f"fault {key[:8]}"},
                headers=headers,
                timeout=30,
            )
    except requests.RequestException:
        return Outcome(kind, key, 0, seconds=time.monotonic() - start)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    return Outcome(
        kind,
        key,
        response.status_code,
        response.headers.get("Content-Type", ""),
        body,
        response.headers.get("Retry-After"),
        time.monotonic() - start,
    )


def burst(
    stack: Stack,
    *,
    uploads: int,
    submissions: int,
    fault: Callable[[], None] | None = None,
    fault_after: float = 1.0,
    spacing: float = 0.3,
) -> list[Outcome]:
    """Send the requests from 4 client threads, ``spacing`` s apart; run ``fault`` after ``fault_after`` s."""
    plan = [("upload", i) for i in range(uploads)] + [("submission", i) for i in range(submissions)]
    plan.sort(key=lambda item: item[1])  # interleave the two kinds
    with ThreadPoolExecutor(4) as pool:
        futures = []
        start = time.monotonic()
        fault_done = fault is None
        for kind, index in plan:
            if not fault_done and time.monotonic() - start >= fault_after:
                fault()  # type: ignore[misc]
                fault_done = True
            futures.append(pool.submit(_send, stack, kind, index, uuid.uuid4().hex))
            time.sleep(spacing)
        if not fault_done:
            fault()  # type: ignore[misc]
        return [f.result() for f in futures]


def retry_failed(stack: Stack, outcomes: list[Outcome]) -> list[Outcome]:
    """Send again, with the same Idempotency-Key, every request that got no 202: what a client does."""
    final: list[Outcome] = []
    for index, outcome in enumerate(outcomes):
        if outcome.status == 202 or (400 <= outcome.status < 500):
            final.append(outcome)
            continue
        for _ in range(20):
            again = _send(stack, outcome.kind, index, outcome.key)
            if again.status in (0, 503):
                time.sleep(1.0)
                continue
            break
        final.append(again)
    return final


def assert_5xx_were_json_503(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status >= 500:
            assert outcome.status == 503, (outcome.kind, outcome.status, outcome.body)
            assert outcome.content_type.startswith("application/json"), outcome.content_type
            assert outcome.body["error"]["code"] == "service:unavailable", outcome.body
            assert outcome.body["error"]["details"]["part"] in ("database", "storage", "broker", "network"), (
                outcome.body
            )
            assert outcome.retry_after and int(outcome.retry_after) > 0


def wait_all_final(stack: Stack, job_ids: list[str], timeout: float = 150.0) -> dict[str, tuple[str, Any]]:
    """Poll until every job is in a final state; return {job id: (status, error)}."""

    def done() -> dict[str, tuple[str, Any]] | None:
        rows = stack.sql("SELECT id::text, status, error FROM jobs_job WHERE id::text = ANY(%s)", [job_ids])
        states = {r[0]: (r[1], r[2]) for r in rows}
        if len(states) == len(job_ids) and all(s in FINAL_JOB_STATES for s, _ in states.values()):
            return states
        return None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = done()
        if states:
            return states
        time.sleep(0.5)
    rows = stack.sql(
        "SELECT id::text, kind, status, stage, message, attempts, retries, dispatched_at FROM jobs_job WHERE "
        "id::text = ANY(%s) "
        "AND status NOT IN ('succeeded','rejected','failed','cancelled')",
        [job_ids],
    )
    raise AssertionError(f"jobs not final after {timeout} s: {rows}\nworker log:\n{stack.workers[-1].tail()}")


def assert_consistent(stack: Stack, outcomes: list[Outcome]) -> dict[str, tuple[str, Any]]:
    """The invariants after a fault: every 202 final exactly once, nothing non-final, rows and objects
    agree."""
    assert_5xx_were_json_503(outcomes)
    accepted = [o for o in outcomes if o.status == 202]
    job_ids = [o.job_id for o in accepted if o.job_id]
    assert len(job_ids) == len(accepted), "a 202 without a job id"
    states = wait_all_final(stack, job_ids)
    # Exactly once: one "finished" entry in each job's log (job_finish is a conditional UPDATE).
    for job_id, in_log in stack.sql(
        "SELECT id::text, (SELECT count(*) FROM jsonb_array_elements(log) e WHERE e->>'stage' = 'finished') "
        "FROM jobs_job WHERE id::text = ANY(%s)",
        [job_ids],
    ):
        assert in_log == 1, f"job {job_id} finished {in_log} times"
    # Idempotency: one version / submission per accepted key, however often it was sent.
    versions = stack.sql("SELECT count(*) FROM learnwares_learnwareversion")[0][0]
    submissions = stack.sql("SELECT count(*) FROM submissions_submission")[0][0]
    expected_versions = len({o.key for o in accepted if o.kind == "upload"}) + stack_baseline(
        stack, "versions"
    )
    expected_submissions = len({o.key for o in accepted if o.kind == "submission"}) + stack_baseline(
        stack, "submissions"
    )
    assert versions == expected_versions, f"{versions} versions for {expected_versions} accepted uploads"
    assert submissions == expected_submissions, (
        f"{submissions} submissions for {expected_submissions} accepted"
    )
    # Nothing left behind a final job: no version uploaded/validating, no job pending/running.
    assert (
        stack.sql(
            "SELECT id, status FROM learnwares_learnwareversion WHERE status IN ('uploaded', 'validating')"
        )
        == []
    )
    assert stack.sql("SELECT id, kind, status FROM jobs_job WHERE status IN ('pending', 'running')") == []
    # Rows and stored objects agree, both ways.
    objects = stack.objects()
    packages = {
        r[0] for r in stack.sql("SELECT package FROM learnwares_learnwareversion WHERE package <> ''")
    }
    sub_files = {
        r[0]
        for r in stack.sql(
            "SELECT data_file FROM submissions_submission WHERE data_file <> '' AND data_deleted_at IS NULL"
        )
    }
    live_subs = {r[0] for r in stack.sql("SELECT id::text FROM submissions_submission")}
    assert packages <= objects, f"rows pointing at missing objects: {packages - objects}"
    assert sub_files <= objects, f"submissions pointing at missing data: {sub_files - objects}"
    orphans = {name for name in objects if name.startswith("learnwares/") and name not in packages}
    orphans |= {
        name for name in objects if name.startswith("submissions/") and name.split("/")[2] not in live_subs
    }
    assert orphans == set(), f"objects without a row: {orphans}"
    return states


_BASELINES: dict[str, int] = {}


def stack_baseline(stack: Stack, what: str) -> int:
    return _BASELINES.get(what, 0)


def remember_baseline(stack: Stack) -> None:
    """Counts before a test's burst (the stack is shared by the tests of the session)."""
    _BASELINES["versions"] = stack.sql("SELECT count(*) FROM learnwares_learnwareversion")[0][0]
    _BASELINES["submissions"] = stack.sql("SELECT count(*) FROM submissions_submission")[0][0]
