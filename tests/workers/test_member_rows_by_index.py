"""A text head pinned to another base version than the run's is fed the labelled texts embedded by its own
version, chosen by the labelled indices a stage passes (``reuse_base_pins.member_inputs``), never by
looking up the run's rows by their bytes; the run's labelled rows are embedded once a run.

``base_encode`` is replaced by a counting stand-in whose rows change in their last bits on every call, as
a batch of another make-up (after an eviction from the embedding cache) changes them: matching rows by
their bytes then fails, matching by index does not. The expected rows are computed here from the texts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from marketplace.core.exceptions import ApplicationError
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import TextData
from workers.pipelines import reuse_base
from workers.pipelines.reuse_base import PublishedBase
from workers.pipelines.reuse_base_pins import member_inputs
from workers.pipelines.reuse_context import ReuseContext

TEXTS = [f"labelled text number {i}" for i in range(6)]
PINNED, ON_RUN = 7, 8  # member version ids: one pinned to another base version, one on the run's


def _base(version_id: int) -> PublishedBase:
    return PublishedBase(
        key="tiny",
        name="tiny",
        learnware_id=1,
        version=version_id,
        version_id=version_id,
        package_sha256=f"{version_id:064x}",
        folder_digest=f"digest-{version_id}",
        pooling="mean",
        dim=2,
        files={},
    )


def _rows(base: PublishedBase, texts: list[str]) -> np.ndarray:
    return np.array([[base.version_id, len(t) + 0.1 * i] for i, t in enumerate(texts)], dtype=np.float64)


@pytest.fixture
def ctx(monkeypatch) -> tuple[ReuseContext, list[int]]:
    calls: list[int] = []

    def base_encode(base: PublishedBase, space: Any, texts: list[str]) -> np.ndarray:
        calls.append(base.version_id)
        return _rows(base, texts) + len(calls) * 1e-12  # other last bits on every call

    monkeypatch.setattr(reuse_base, "base_encode", base_encode)
    submission = SimpleNamespace(
        has_labels=True, modality="text", data_format=DataFormat.JSONL, requirements={}
    )
    context = ReuseContext(submission)  # type: ignore[arg-type]
    context.__dict__["space"] = SimpleNamespace(key="text-tiny")
    context.__dict__["labelled_texts"] = TextData(texts=TEXTS, y=np.array(["a", "b"] * 3))
    context.base_resolved(_base(1))
    context.cache.member_bases.update({PINNED: _base(2), ON_RUN: None})
    return context, calls


def test_the_labelled_rows_are_embedded_once_a_run(ctx):
    context, calls = ctx
    first = context.labelled_table
    assert first is not None
    for _ in range(3):
        assert context.labelled_table is first
    assert calls == [1]
    assert_array_equal(np.round(first.X, 9), _rows(_base(1), TEXTS))


def test_a_pinned_member_takes_its_versions_rows_of_the_indices_given(ctx):
    context, calls = ctx
    rebase = member_inputs(context)
    assert rebase is not None
    X = context.labelled_table.X
    at = np.array([4, 0, 2])
    shifted = X[at] + 1e-9  # bytes unlike any labelled row's: only the indices name the rows
    got = rebase(PINNED, shifted, at)
    assert_array_equal(np.round(got, 9), _rows(_base(2), TEXTS)[at])
    assert_array_equal(rebase(ON_RUN, shifted, at), shifted)  # the run's version: its rows as given
    assert_array_equal(rebase(PINNED, X, np.arange(len(TEXTS)))[at], got)
    assert sorted(calls) == [1, 2]  # each version embedded the labelled texts once


@pytest.mark.parametrize("rows", [None, np.array([0, 1]), np.array([0, 1, 6]), np.array([-1, 0, 1])])
def test_rows_without_their_labelled_indices_are_refused_by_name(ctx, rows):
    context, _ = ctx
    rebase = member_inputs(context)
    assert rebase is not None
    with pytest.raises(ApplicationError) as err:
        rebase(PINNED, context.labelled_table.X[:3], rows)
    assert err.value.code == "submission:app:member-base-rows"
