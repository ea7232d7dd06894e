"""Fixtures of the submissions tests: a constructed digits market owned by ``bob``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.market import Market, market_create


@pytest.fixture
def market(bob: Any) -> Market:
    return market_create(owner=bob)


@pytest.fixture
def report_log() -> list[tuple[str, int, int, str]]:
    return []


@pytest.fixture
def report(report_log: list[tuple[str, int, int, str]]):
    def record(stage: str, done: int, total: int, message: str = "") -> None:
        report_log.append((stage, done, total, message))

    return record
