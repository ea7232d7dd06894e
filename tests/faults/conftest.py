"""One market on its own services for the fault tests; each test leaves every service up again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Stack, start_stack
from tests.support.services import wait_for

_EARLIER_FAILED: list[str] = []  # node ids of fault tests that failed since the last settling


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed and "tests/faults/" in str(item.fspath):
        _EARLIER_FAILED.append(item.nodeid)
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    built = start_stack()
    yield built
    built.destroy()


@pytest.fixture
def market(stack: Stack) -> Iterator[Stack]:
    """The stack with every service up when the test starts (a test may leave one broken)."""
    stack.proxy.set_mode("pass")
    if stack.redis.process is None or stack.redis.process.poll() is not None:
        stack.redis.start()
    if not stack.sql("SELECT 1"):
        stack.pg.start()
    if not any(w.process is not None and w.process.poll() is None for w in stack.workers):
        stack.start_worker()
    if _EARLIER_FAILED:
        _settle_what_an_earlier_test_left(stack)
        _EARLIER_FAILED.clear()
    yield stack
    stack.proxy.set_mode("pass")


def _settle_what_an_earlier_test_left(stack: Stack) -> None:
    """Let a failed earlier test's jobs finish, then repair what it left in storage, so its
    failure is reported once and not again as "objects without a row" by every later test.

    Only after a failure: a passing test has already shown that it left nothing behind. The
    wait is bounded by the dispatcher's and the stale-job recovery's intervals (FAST_SETTINGS).
    """

    def settled() -> bool:
        return not stack.sql("SELECT 1 FROM jobs_job WHERE status IN ('pending', 'running') LIMIT 1")

    if not settled():
        wait_for(settled, timeout=120)
    stack.manage("check_consistency", "--min-age", "0")
