"""Reaching the test PostgreSQL: skip when it is down, fail instead under CI; a fresh
database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

#: The PostgreSQL the suite uses (trust auth on this machine); override for other setups.
POSTGRES_URL = os.environ.get(
    "CLOACA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def require_postgres() -> str:
    """The test PostgreSQL URL; skips the test when the server is unreachable, or fails it
    when ``CLOACA_REQUIRE_POSTGRES=1`` (CI), so PostgreSQL tests never silently vanish."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except Exception as exc:
        message = f"PostgreSQL at {POSTGRES_URL} unavailable: {exc}"
        if os.environ.get("CLOACA_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


def drop_schema(url: str, schema: str) -> None:
    """Remove a test's schema and everything in it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped (with any connection a test
    left open) afterwards."""
    import psycopg

    url = require_postgres()
    name = f"cloaca_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield _with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_sql(
    url: str, sql: str, params: dict[str, object] | None = None
) -> list[tuple[object, ...]]:
    """Run one statement on the database behind a cloaca URL (either backend) in its own
    committed transaction; returns its rows. Parameters are written ``:name``."""
    if url.startswith(("postgres://", "postgresql://")):
        import re

        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(re.sub(r":(\w+)", r"%(\1)s", sql), params or {})
            return list(cur.fetchall()) if cur.description else []
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite://"), timeout=30)
    try:
        conn.execute("PRAGMA foreign_keys = ON")  # as on cloaca's own connections
        with conn:
            return list(conn.execute(sql, params or {}).fetchall())
    finally:
        conn.close()
