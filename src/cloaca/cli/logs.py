"""Logging of a ``cloaca run`` worker: text for a person at a terminal, or JSON, one object
per line, for a log collector. Database passwords never reach either."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloaca.store.drivers.urls import masked_url

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came as ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record (``execution_id``, ``task_id``, ...)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields, "traceback"}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": masked_url(record.getMessage()),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, masked_url(value) if isinstance(value, str) else value)
        if record.exc_info:
            entry["traceback"] = masked_url("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``2026-12-03 13:05:22 WARNING cloaca.engine: message (task_id=load)``."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when} {record.levelname} {record.name}: {record.getMessage()}"
        extra = extra_fields(record)
        if extra:
            line += " (" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")"
        if record.exc_info:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return masked_url(line)


def setup_logging(level: str, log_format: str | None) -> Callable[[], None]:
    """Send every log record at ``level`` or above to stderr, as ``log_format`` (None: text
    on a terminal, JSON otherwise). Returns what undoes it (the CLI's tests run many
    workers in one process)."""
    if log_format is None:
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    return undo
