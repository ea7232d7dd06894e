"""The log formatters and the context filter: what one line of each format holds."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from marketplace.core import logs


def _record(msg: str = "hello %s", args: tuple = ("world",), **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("lwm.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _filtered(record: logging.LogRecord) -> logging.LogRecord:
    assert logs.ContextFilter().filter(record) is True
    return record


def test_json_line_has_time_level_logger_message_context_and_extra_fields():
    with logs.bound(request_id="req-1", job_id="job-9", stage="rank"):
        record = _filtered(_record(seconds=1.25, outcome="done"))
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["ts"].endswith("Z") and "T" in doc["ts"]
    assert (doc["level"], doc["logger"], doc["message"]) == ("WARNING", "lwm.test", "hello world")
    assert (
        doc["request_id"] == "req-1"
        and doc["job_id"] == "job-9"
        and doc["stage"] == "rank"
        and "task" not in doc
    )
    assert doc["seconds"] == 1.25 and doc["outcome"] == "done"
    assert list(doc)[:7] == ["ts", "level", "logger", "message", "request_id", "job_id", "stage"]


def test_json_line_is_one_line_with_the_traceback_inside():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad\nvalue" in json.loads(line)["exc_info"]


def test_console_line_is_readable_key_value_with_quoted_values():
    with logs.bound(job_id="j1"):
        record = _filtered(_record(note="two words", count=3))
    line = logs.ConsoleFormatter().format(record)
    prefix, fields = line.split(" WARNING lwm.test: hello world ")
    assert prefix.endswith("Z")
    assert fields == 'job_id=j1 note="two words" count=3'


def test_context_is_unbound_after_the_block_and_extra_wins_over_context():
    with logs.bound(request_id="outer"):
        with logs.bound(request_id="inner"):
            assert logs.current("request_id") == "inner"
        assert logs.current("request_id") == "outer"
        record = _filtered(_record(request_id="explicit"))
        assert record.request_id == "explicit"
    assert logs.current("request_id") is None
    assert not hasattr(_filtered(_record()), "job_id")


def test_celery_received_line_names_its_task_and_a_job_tasks_id_is_the_job_id():
    logs.JOB_TASK_NAMES.add("test.job-task")
    try:
        data = {"id": "abc", "name": "test.job-task"}
        job_line = _filtered(_record("Task %(name)s[%(id)s] received", (data,), data=data))
        other = _filtered(
            _record(
                "Task %(name)s", ({"name": "search.snapshot"},), data={"id": "xyz", "name": "search.snapshot"}
            )
        )
    finally:
        logs.JOB_TASK_NAMES.discard("test.job-task")
    assert (job_line.task, job_line.job_id) == ("test.job-task", "abc")
    assert other.task == "search.snapshot" and not hasattr(other, "job_id")
    doc = json.loads(logs.JsonFormatter().format(job_line))
    assert doc["message"] == "Task test.job-task[abc] received" and "data" not in doc


def test_djangos_request_lines_take_the_request_id_from_the_attached_request():
    class Request:
        request_id = "from-request"

    record = _filtered(_record("Not Found: %s", ("/x",), request=Request(), status_code=404))
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["request_id"] == "from-request" and doc["status_code"] == 404 and "request" not in doc


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        ("abc-123", "abc-123"),
        (" 7f3a.b:c_d ", "7f3a.b:c_d"),
        ("x" * 128, "x" * 128),
        ("x" * 129, None),
        ("has space", None),
        ("new\nline", None),
        ('quo"te', None),
        ("", None),
        (None, None),
        (5, None),
    ],
)
def test_only_bounded_safe_ids_are_accepted(raw, accepted):
    assert logs.accepted_id(raw) == accepted


def test_the_settings_logging_wires_the_context_filter_into_the_chosen_formatter():
    config = logs.logging_config(fmt="json", level="INFO")
    handler = config["handlers"]["console"]
    assert handler["filters"] == ["context"] and config["filters"]["context"]["()"] is logs.ContextFilter
    assert config["formatters"][handler["formatter"]]["()"] is logs.JsonFormatter
    assert (
        logs.logging_config(fmt="console", level="INFO")["formatters"]["structured"]["()"]
        is logs.ConsoleFormatter
    )
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="LWM_LOG_FORMAT"):
        logs.logging_config(fmt="xml", level="INFO")
