"""One market on its own services for the fault tests; each test leaves every service up again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Stack, start_stack


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
    yield stack
    stack.proxy.set_mode("pass")
