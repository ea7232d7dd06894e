"""Fixtures of the specs tests: one BLAS thread, seeded generators, small synthetic domains."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    # The suite shares 2 cores with other processes; a spinning multi-threaded
    # OpenBLAS makes these tiny matrix products 10-20x slower, not faster.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def blobs(
    rng: np.random.Generator, n: int, d: int, centre: float | np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """n Gaussian rows around ``centre`` (scalar or (d,))."""
    return rng.normal(size=(n, d)) * scale + centre
