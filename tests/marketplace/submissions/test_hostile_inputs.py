"""Inputs an outsider sends that used to crash a submission (``job:app:crashed``) instead of ending
in a result or a named user error (docs/submissions.md, 'Hostile inputs'). Each case runs the whole
pipeline in this process on the constructed digits market."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.data import MAX_ABS_VALUE
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from tests.support.market import COLUMNS, csv_bytes, user_task
from workers.pipelines.reuse import reuse_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000  # jobs run here are never finished by a worker


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _submission(
    owner: Any,
    data: bytes,
    *,
    fmt: str = "csv",
    labelled: bytes | None = None,
    labelled_format: str = "csv",
    task: str = "classification",
) -> Submission:
    extra: dict[str, Any] = {}
    if labelled is not None:
        extra = {
            "labelled": ContentFile(labelled, name=f"l.{labelled_format}"),
            "labelled_format": labelled_format,
        }
    return submission_create(
        owner=owner,
        data_format=fmt,
        data=ContentFile(data, name=f"d.{fmt}"),
        requirements={},
        task=task,
        **extra,
    )


def _rejection(submission: Submission, report: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        reuse_run(submission_id=str(submission.id), report=report)
    return info.value


def test_a_column_named_twice_is_refused_by_name_in_a_csv_and_an_npz(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, seed=3)
    doubled = [*COLUMNS, "p7"]
    X = np.c_[task["X"], task["X"][:, 7]]
    error = _rejection(_submission(alice, csv_bytes(X, columns=doubled)), report)
    assert error.code == "submission:user:duplicate-column" and "'p7'" in error.message
    assert error.message.startswith("data:")
    npz = _npz(X=X, columns=np.asarray(doubled))
    error = _rejection(_submission(alice, npz, fmt="npz"), report)
    assert error.code == "submission:user:duplicate-column" and "'p7'" in error.message
    labelled = csv_bytes(np.c_[task["X"][:30], task["X"][:30, 7]], np.arange(30) % 10, columns=doubled)
    error = _rejection(_submission(alice, csv_bytes(task["X"]), labelled=labelled), report)
    assert error.code == "submission:user:duplicate-column" and error.message.startswith("labelled:")


def test_values_beyond_the_float32_range_are_refused_naming_the_column(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, seed=4)
    X = task["X"].copy()
    X[:, 5] *= 1e300  # finite in float64, infinite once a model (float32) or a square sees it
    X[0, 5] = 1.0e300
    error = _rejection(_submission(alice, csv_bytes(X)), report)
    assert error.code == "submission:user:out-of-range" and "'p5'" in error.message
    assert np.abs(X[:, 5]).max() > MAX_ABS_VALUE > np.abs(task["X"]).max()


@pytest.mark.parametrize(
    ("cell", "code"),
    [("", "submission:user:missing-labels"), ("nan", "submission:user:missing-labels")],
)
def test_a_labelled_row_without_a_label_is_refused_naming_the_row(market, alice, report, cell, code):
    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=5)
    y = task["y_l"].astype(str)
    y[[2, 9]] = cell
    error = _rejection(_submission(alice, csv_bytes(task["X"]), labelled=csv_bytes(task["X_l"], y)), report)
    assert error.code == code and "in rows 3, 10:" in error.message, error.message


def test_npz_labels_with_nan_and_infinite_regression_targets_are_refused(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=6)
    y = task["y_l"].astype(np.float64)
    y[4] = np.nan
    labelled = _npz(X=task["X_l"], y=y, columns=np.asarray(COLUMNS))
    error = _rejection(
        _submission(alice, csv_bytes(task["X"]), labelled=labelled, labelled_format="npz"), report
    )
    assert error.code == "submission:user:missing-labels" and "in row 5:" in error.message
    y[4] = np.inf
    labelled = _npz(X=task["X_l"], y=y + 0.5, columns=np.asarray(COLUMNS))
    submission = _submission(
        alice, csv_bytes(task["X"]), labelled=labelled, labelled_format="npz", task="regression"
    )
    error = _rejection(submission, report)
    assert error.code == "submission:user:nan" and error.message.endswith("in row 5")


def test_text_labels_that_are_json_nan_or_empty_are_missing_labels() -> None:
    from marketplace.submissions.data import read_texts

    lines = [{"text": "a match report", "label": "sport"}, {"text": "a budget", "label": float("nan")}]
    raw = "".join(json.dumps(x) + "\n" for x in lines).encode()
    with pytest.raises(ValidationFailed) as info:
        read_texts(raw, field="labelled", labelled=True)
    assert info.value.code == "submission:user:missing-labels" and "in row 2:" in info.value.message
    lines[1]["label"] = "  "
    raw = "".join(json.dumps(x) + "\n" for x in lines).encode()
    with pytest.raises(ValidationFailed) as info:
        read_texts(raw, field="labelled", labelled=True)
    assert info.value.code == "submission:user:missing-labels"


def test_a_constant_regression_target_is_refused_by_name(market, alice, report):
    # It crashed the job: the results held NaN (R² and the rank scores divide by the targets' spread).
    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=7)
    labelled = csv_bytes(task["X_l"], np.full(30, 1000.0))
    error = _rejection(_submission(alice, csv_bytes(task["X"]), labelled=labelled, task="regression"), report)
    assert error.code == "submission:user:constant-target" and error.message.startswith("labelled:")


def test_regression_targets_whose_squares_leave_float32_are_refused_by_name(market, alice, report):
    # Targets near 1e34 crashed the assemble stage: float32 fits of their squared errors gave NaN.
    from marketplace.submissions.data import MAX_ABS_TARGET

    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=8)
    y = np.linspace(1.0, 2.0, 30) * 1e34
    assert y.max() > MAX_ABS_TARGET and np.isfinite(np.float32(y.max()))
    labelled = csv_bytes(task["X_l"], y)
    error = _rejection(_submission(alice, csv_bytes(task["X"]), labelled=labelled, task="regression"), report)
    assert error.code == "submission:user:out-of-range" and error.message.startswith("labelled:")


def test_an_unknown_id_in_exclude_is_named_under_exclude(market, alice, report):
    task = user_task({"upright": 1.0}, n=60, seed=9)
    submission = submission_create(
        owner=alice,
        data_format="csv",
        data=ContentFile(csv_bytes(task["X"]), name="d.csv"),
        requirements={"exclude": [999999]},
    )
    error = _rejection(submission, report)
    assert error.code == "submission:user:unknown-learnware"
    assert error.message.startswith("requirements.exclude:") and "999999" in error.message


def test_a_test_fold_of_tied_regression_targets_is_scored_against_the_samples_spread() -> None:
    # 11 ratings of 4 and one of 5: a fold holding only 4s had R² = NaN, which crashed the run's results.
    from workers.pipelines.reuse_methods import score

    y = np.r_[np.full(11, 4.0), 5.0]
    fold, prediction = y[:3], np.array([4.5, 3.5, 4.0])
    got = score("regression", fold, prediction, y)["r2"]
    expected = 1.0 - np.sum((prediction - 4.0) ** 2) / (3 * np.mean((y - y.mean()) ** 2))
    assert got == pytest.approx(expected, rel=1e-12)
    assert np.isnan(score("regression", fold, prediction)["r2"])  # no reference: undefined, as before
    spread = y[8:]  # a fold with its own spread keeps its own R²
    own = 1.0 - np.sum((spread - 4.2) ** 2) / np.sum((spread - spread.mean()) ** 2)
    assert score("regression", spread, np.full(4, 4.2), y)["r2"] == pytest.approx(own, rel=1e-12)
