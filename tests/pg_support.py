"""Reaching the test PostgreSQL: skip when it is down, fail instead under CI; a fresh
database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema of the test database (its connections put it
    first on their ``search_path``), dropped afterwards. A schema is much cheaper to make
    than a database, and to cloaca a URL naming one looks like an empty database."""
    import psycopg

    url = require_postgres()
    schema = f"cloaca_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        drop_schema(url, schema)


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
