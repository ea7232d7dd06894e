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


def test_a_jsonl_text_with_a_lone_surrogate_sent_through_the_api_is_refused_naming_the_line(
    alice, client_for, report
):
    # "\ud800" is valid JSON, but UTF-8 cannot hold the string it decodes to: hashing it (the embedding
    # caches' keys) raised UnicodeEncodeError, and the job crashed.
    from django.core.files.uploadedfile import SimpleUploadedFile

    from marketplace.learnwares.choices import Modality
    from marketplace.learnwares.models import FeatureSpace

    FeatureSpace.objects.create(  # the MiniLM text space, as adapter markets make it: texts get encoded
        key="text-minilm-surrogate",
        kind=Modality.TEXT,
        schema={},
        dim=384,
        gamma=1.0,
        standardization={},
        sketch_seed=0,
        sketch_dim=512,
    )
    lines = b'{"text": "a match report"}\n\n{"text": "a budget \\ud800 cut"}\n'
    assert "\ud800" in json.loads(lines.splitlines()[2])["text"]
    response = client_for(alice).post(
        "/api/v1/submissions/",
        {"data": SimpleUploadedFile("d.jsonl", lines), "modality": "text"},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    submission = Submission.objects.get(id=response.json()["submission"]["id"])
    error = _rejection(submission, report)
    assert error.code == "submission:user:bad-format", error.message
    assert error.message.startswith("data: line 3:") and "U+D800" in error.message


def test_a_label_with_a_lone_surrogate_is_refused_naming_the_line() -> None:
    from marketplace.submissions.data import read_texts

    raw = b'{"text": "a match report", "label": "sport"}\n{"text": "a budget", "label": "fin\\udc00"}\n'
    with pytest.raises(ValidationFailed) as info:
        read_texts(raw, field="labelled", labelled=True)
    assert info.value.code == "submission:user:bad-format"
    assert "line 2: 'label'" in info.value.message and "U+DC00" in info.value.message


def test_search_by_data_and_publish_samples_refuse_a_lone_surrogate_naming_the_line() -> None:
    from marketplace.learnwares.samples import _texts as sample_texts
    from marketplace.search.data import _texts as search_texts

    raw = b'{"text": "fine"}\n{"text": "\\ud83d alone"}\n'
    with pytest.raises(ValidationFailed) as info:
        search_texts(raw, "q.jsonl")
    assert info.value.code == "search:user:bad-file" and "line 2" in info.value.message
    with pytest.raises(ValidationFailed) as info:
        sample_texts(raw)
    assert info.value.code == "publish:user:sample-format" and "line 2" in info.value.message
    # A pair of surrogate escapes is one character, and fine.
    assert search_texts(b'{"text": "\\ud83d\\ude00"}\n', "q.jsonl") == ["\U0001f600"]


def test_class_ids_that_differ_only_beyond_2_to_the_53_stay_two_classes(market, alice, report):
    from marketplace.submissions.data import checked_labels, regression_targets

    big, bigger = "9007199254740992", "9007199254740993"  # 2^53 and 2^53 + 1
    assert float(big) == float(bigger)  # one float64: as floats they merged into one class
    y = checked_labels(np.array([big, bigger, big, "7"]), "labelled")
    assert y.tolist() == [big, bigger, big, "7"]
    assert regression_targets(y, "labelled").tolist() == [float(big), float(bigger), float(big), 7.0]
    assert checked_labels(np.array(["3", "4"]), "labelled").tolist() == [3, 4]  # ints as before
    # Through the pipeline: the spec stage reports both ids as classes of their own.
    task = user_task({"upright": 1.0}, n=60, n_labelled=30, seed=12)
    labels = np.where(task["y_l"] == 0, big, np.where(task["y_l"] == 1, bigger, task["y_l"].astype(str)))
    submission = _submission(alice, csv_bytes(task["X"]), labelled=csv_bytes(task["X_l"], labels))
    reuse_run(submission_id=str(submission.id), report=report)
    classes = Submission.objects.get(id=submission.id).results["spec"]["labelled"]["classes"]
    assert big in classes and bigger in classes
    assert sorted(classes) == sorted(set(labels.tolist()))


@pytest.mark.parametrize("user_units", [1e-30, 1e30])
def test_units_whose_conversion_leaves_float32_are_refused_by_name(market, alice, report, user_units):
    # Each stored unit_rms lies in float32's range, but the user's rows are 1e60 times away from the
    # members' units: the scale 1/s was inf (a 500, member-failed) or 0 (every row silently 0) in float32.
    from marketplace.learnwares.models import Specification

    for spec in Specification.objects.filter(version__in=market.versions.values()):
        spec.rkme = spec.rkme | {"unit_rms": (np.asarray(spec.rkme["unit_rms"]) / user_units).tolist()}
        spec.save(update_fields=["rkme"])
    task = user_task({"upright": 1.0}, n=60, seed=13)
    error = _rejection(_submission(alice, csv_bytes(task["X"] * user_units)), report)
    assert error.code == "submission:user:out-of-range", error.message
    # Named: columns the user's rows fill (an all-zero column's RMS is 1 on both sides, a factor of 1e±30).
    lit = {COLUMNS[c] for c in np.flatnonzero(np.abs(task["X"]).max(axis=0) > 0)}
    named = error.details["columns"]
    assert named and set(named) <= lit and f"'{named[0]}'" in error.message and "float32" in error.message
