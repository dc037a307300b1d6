"""Database URLs: which forms are accepted and how each opens a driver."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from cloaca.errors import ValidationError

ACCEPTED_FORMS = (
    "sqlite://relative/path.db, sqlite:///absolute/path.db (query strings such as ?mode=rwc "
    "are accepted), :memory: or sqlite://:memory:, postgres://user@host:5432/db or "
    "postgresql://..."
)


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: the dialect and what the driver needs to connect."""

    dialect: str
    target: str  # a file path / ":memory:" for sqlite, the full URL for postgres
    original: str


def parse_database_url(url: object) -> DatabaseUrl:
    """Parse ``url`` or raise ``ValueError`` naming it and the accepted forms."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(f"Unsupported database URL {url!r}: expected one of {ACCEPTED_FORMS}")
    text = url.strip()
    if text in (":memory:", "sqlite://:memory:", "sqlite::memory:"):
        return DatabaseUrl("sqlite", ":memory:", text)
    if text.startswith(("postgres://", "postgresql://")):
        if not urlsplit(text).hostname and "host=" not in text:
            raise ValidationError(
                f"Malformed PostgreSQL URL {masked_url(text)!r}: a host is required"
            )
        return DatabaseUrl("postgres", text, text)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        path, _, query = rest.partition("?")
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "mode" and value not in ("rwc", "rw", "ro", "memory"):
                raise ValidationError(
                    f"Unsupported SQLite mode {value!r} in {text!r}: accepted rwc, rw, ro, memory"
                )
        if path in ("", "/"):
            raise ValidationError(
                f"Malformed SQLite URL {text!r}: no file path; expected {ACCEPTED_FORMS}"
            )
        if path == ":memory:":
            return DatabaseUrl("sqlite", ":memory:", text)
        return DatabaseUrl("sqlite", os.path.expanduser(path), text)
    raise ValidationError(f"Unsupported database URL {text!r}: expected one of {ACCEPTED_FORMS}")


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs (SPEC 10)."""
    return re.sub(r"(://[^:/@?#\s]*:)[^@/?#\s]*@", r"\1***@", url)
