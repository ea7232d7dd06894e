"""Structured logs: the ids of the work in progress on every line, JSON or key=value.

What a line is about (``request_id``, ``job_id``, ``task``, ``stage``) lives in context
variables, bound once where the work starts (the request-id middleware, the worker's
task signals, the job's stage clock) and copied onto every record by ``ContextFilter``;
callers add their own fields with ``extra={...}``. ``LWM_LOG_FORMAT`` chooses the
formatter in ``settings.LOGGING``: ``json`` (one object a line, for the log pipeline)
or ``console`` (``time level logger: message key=value ...``, for people).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# The fields every line may carry, in the order they are shown.
CONTEXT_FIELDS = ("request_id", "job_id", "task", "stage")
_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"lwm_log_{name}", default=None) for name in CONTEXT_FIELDS
}
# Attributes every LogRecord has: anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Celery's own lines carry their formatting arguments in ``data`` (already shown in the message);
# Django's carry the request object (the request id and the access line say which request it was).
_SKIPPED_EXTRAS = frozenset({"data", "request", "server_time"})
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Names of the Celery tasks that run a job (``workers.base.JobTask`` registers them). Such a task is
# sent with the job id as its Celery task id, so Celery's own lines about it (received, retry) name the job.
JOB_TASK_NAMES: set[str] = set()


def accepted_id(raw: object) -> str | None:
    """``raw`` when it is a safe, bounded id (``REQUEST_ID_PATTERN``); None otherwise."""
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    return raw if REQUEST_ID_PATTERN.fullmatch(raw) else None


def bind(
    **fields: str | None,
) -> list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]]:
    """Set context fields for what runs next in this thread/task; return tokens for ``unbind``."""
    return [
        (_CONTEXT[name], _CONTEXT[name].set(None if value is None else str(value)))
        for name, value in fields.items()
    ]


def unbind(tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]]) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """``with bound(job_id=...):`` every line logged inside carries the fields."""
    tokens = bind(**fields)
    try:
        yield
    finally:
        unbind(tokens)


def current(name: str) -> str | None:
    """The bound value of one context field (``current("request_id")``)."""
    return _CONTEXT[name].get()


def context() -> dict[str, str]:
    return {name: value for name, var in _CONTEXT.items() if (value := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (fields given with ``extra=`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        from_request = getattr(getattr(record, "request", None), "request_id", None)
        if from_request and getattr(record, "request_id", None) is None:
            record.request_id = from_request  # django.request logs 4xx/5xx after the middlewares returned
        data = getattr(record, "data", None)  # Celery's "Task x[id] received" line, before any context exists
        if (
            isinstance(data, dict)
            and isinstance(data.get("name"), str)
            and getattr(record, "task", None) is None
        ):
            record.task = data["name"]
            if data["name"] in JOB_TASK_NAMES and getattr(record, "job_id", None) is None:
                record.job_id = str(data.get("id"))
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: the context fields first, then ``extra=`` ones."""
    fields = {name: value for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None}
    for key, value in vars(record).items():
        if (
            key not in _RECORD_ATTRS
            and key not in _SKIPPED_EXTRAS
            and key not in CONTEXT_FIELDS
            and not key.startswith("_")
        ):
            fields[key] = value
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the fields, ``exc_info``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(record_fields(record))
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack_info"] = record.stack_info
        return json.dumps(doc, default=str, ensure_ascii=False)


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class ConsoleFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO logger: message key=value ...`` (values with spaces quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = record_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={_console_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def logging_config(*, fmt: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict of the settings: one stream handler with the context filter."""
    if fmt not in ("json", "console"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"LWM_LOG_FORMAT={fmt!r} must be json or console")
    formatter = JsonFormatter if fmt == "json" else ConsoleFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"structured": {"()": formatter}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structured", "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default config gives "django" its own handler (under DEBUG): ours alone, through the
            # root.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "faiss.loader": {"level": "WARNING"},  # faiss logs every CPU-feature probe at INFO on each import
            # Our access line (marketplace.core.request_id) replaces Django's 4xx/5xx warnings' context-free
            # twin.
            "django.server": {"level": "WARNING"},
        },
    }
