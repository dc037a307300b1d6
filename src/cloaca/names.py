"""Names checked at the door: workflow names, task ids, trigger and cron instance names,
and PostgreSQL schema names.

A name is stored in the database, shown in logs, the CLI and the dashboard, and compared
by the database in claims. A NUL byte cannot be stored by PostgreSQL at all (a query
carrying one fails, and a claim listing every registered workflow fails with it), and a
newline or other control character corrupts every log line and table that shows it. So
every name is validated once, where it enters, by :func:`check_name`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from cloaca.errors import ValidationError

__all__ = ["MAX_IDENTIFIER_BYTES", "MAX_NAME_LENGTH", "check_name", "check_schema_name"]

#: The longest name accepted, in characters (a generous bound for indexes and displays).
MAX_NAME_LENGTH = 255

#: PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names are silently truncated.
MAX_IDENTIFIER_BYTES = 63

_NAME_RULE = (
    f"a non-empty string of at most {MAX_NAME_LENGTH} characters, not only whitespace, "
    "with no control characters (NUL, newline, tab, ...)"
)
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_]+")
_SHOWN = 100  # characters of a rejected value's repr shown in a message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} chars)"


def _problem(value: Any) -> str | None:
    """Why ``value`` is not an acceptable name, or None when it is."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is {len(value)} characters long, over the limit of {MAX_NAME_LENGTH}"
    # isprintable() is False for every control character (and a few harmless ones, such
    # as a non-breaking space), so the per-character scan only runs for unusual names.
    if not value.isprintable():
        for position, char in enumerate(value):
            if unicodedata.category(char) == "Cc":
                return f"it contains the control character {char!r} at position {position}"
    if value.isspace():
        return "it is only whitespace"
    return None


def check_name(kind: str, value: Any) -> str:
    """Return ``value`` if it is an acceptable ``kind`` name, else raise ``ValueError``.

    Accepted: a non-empty ``str`` of at most :data:`MAX_NAME_LENGTH` characters that is not
    only whitespace and holds no control character (Unicode category Cc: NUL, ``\\n``,
    ``\\t``, ``\\r``, DEL, ...). The message names ``kind``, the value (repr) and the rule.
    """
    problem = _problem(value)
    if problem is not None:
        raise ValidationError(
            f"{kind} {_shown(value)} is invalid ({problem}); accepted: {_NAME_RULE}"
        )
    return str(value)


def check_schema_name(schema: Any) -> str:
    """Return ``schema`` if it can name a PostgreSQL schema, else raise ``ValueError``.

    Accepted: ASCII letters, digits and underscores, at most :data:`MAX_IDENTIFIER_BYTES`
    bytes (PostgreSQL would silently truncate a longer one).
    """
    if not isinstance(schema, str) or not schema:
        raise ValidationError(f"Schema name cannot be empty (got {schema!r})")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValidationError(
            f"Schema name must contain only alphanumeric characters and underscores: "
            f"{_shown(schema)}"
        )
    if len(schema) > MAX_IDENTIFIER_BYTES:  # ASCII only by now: characters are bytes
        raise ValidationError(
            f"Schema name {_shown(schema)} is {len(schema)} bytes long, over PostgreSQL's "
            f"identifier limit of {MAX_IDENTIFIER_BYTES} bytes"
        )
    return schema
