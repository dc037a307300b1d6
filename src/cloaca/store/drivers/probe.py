"""Look at a database without changing it: does it exist and hold cloaca's tables?

Opening a driver may create things (a SQLite file, a PostgreSQL schema); management tools
that must not create a database ask here first."""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from cloaca.errors import ConnectionFailed
from cloaca.store.drivers.urls import DatabaseUrl, masked_url
from cloaca.store.migrate import VERSION_TABLE


def has_cloaca_tables(url: DatabaseUrl, schema: str | None = None) -> bool:
    """True when the database ``url`` names exists and holds cloaca's version table (in
    ``schema`` on PostgreSQL, else in the connection's current schema). Creates nothing."""
    if url.dialect == "postgres":
        return _postgres_has_tables(url.target, schema)
    if url.target == ":memory:":
        return False  # a fresh in-memory database is always empty
    if not os.path.isfile(url.target):
        return False
    try:
        conn = sqlite3.connect(f"file:{quote(url.target)}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
        ).fetchone()
    except sqlite3.DatabaseError:
        return False  # not a SQLite file
    finally:
        conn.close()
    return row is not None


def _postgres_has_tables(target: str, schema: str | None) -> bool:
    from cloaca.store.drivers.postgres import _import_psycopg, connect_failure  # optional

    psycopg = _import_psycopg()
    try:
        with psycopg.connect(target, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = COALESCE(%s, current_schema()) AND table_name = %s",
                (schema, VERSION_TABLE),
            ).fetchone()
    except psycopg.Error as exc:
        raise ConnectionFailed(
            f"cannot connect to PostgreSQL at {masked_url(target)!r}: {connect_failure(exc)[1]}"
        ) from exc
    return row is not None
