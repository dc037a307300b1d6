"""How values look in the ``cloaca`` command's tables: short ids, times to the second in
local time, human durations. JSON output never goes through here."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

#: Ids as tables show them: the first characters, enough to tell rows apart and accepted
#: back as an argument wherever an id is (``cloaca executions show 3f2a9c1e``).
SHORT_ID = 8

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def short_id(value: str) -> str:
    """The first :data:`SHORT_ID` characters of an id."""
    return value[:SHORT_ID]


def timestamp(value: str | datetime) -> str:
    """``2026-12-03 13:05:22``: to the second, in this machine's time zone when the value
    carries one."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """``350ms``, ``1.2s``, ``2m03s``, ``1h05m``."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def elapsed(start: str | None, end: str | None, now: datetime | None = None) -> str | None:
    """The human duration from ``start`` to ``end`` (or to ``now`` while running)."""
    if not start:
        return None
    begun = datetime.fromisoformat(start)
    finished = datetime.fromisoformat(end) if end else now or datetime.now(begun.tzinfo)
    return duration((finished - begun).total_seconds())


def cell(value: Any, column: str = "", short_ids: bool = True) -> str:
    """One value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, int | float) and column.endswith("_ms"):
        return duration(value / 1000)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return timestamp(value)
    text = str(value)
    if short_ids and _UUID.match(text):
        return short_id(text)
    if _TIMESTAMP.match(text):
        try:
            return timestamp(text)
        except ValueError:
            return text
    return text
