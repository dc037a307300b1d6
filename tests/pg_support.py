"""Reaching the test PostgreSQL: skip when it is down, fail instead under CI."""

from __future__ import annotations

import os

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
