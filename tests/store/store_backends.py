"""The databases the store tests run on: one empty database of each dialect per test, with
ways to open fresh Store connections on it and a raw side channel (a separate driver
connection) to arrange and inspect rows the Store has no method for."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloaca.store.core import Store
from cloaca.store.db import Database
from cloaca.store.drivers.sqlite import SqliteDatabase
from pg_support import drop_schema, require_postgres

BACKENDS = ["sqlite", "postgres"]


@dataclass
class Backend:
    """One empty database of one dialect, and ways to reach it."""

    name: str
    dialect: str
    open_db: Callable[[], Database]  # a new driver connection (not migrated)
    raw: Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]  # side-channel SQL
    location: str
    tables: Callable[[], set[str]]  # the tables in the database (schema)
    cleanup: Callable[[], None] = lambda: None
    _opened: list[Store] = field(default_factory=list)

    def open(self, *, migrate: bool = True) -> Store:
        """A new Store on the database (closed at teardown)."""
        store = Store(self.open_db())
        self._opened.append(store)
        if migrate:
            store.migrate()
        return store

    def close_all(self) -> None:
        """Close every Store this backend opened."""
        for store in self._opened:
            try:
                store.close()
            except Exception:  # already closed by the test
                pass
        self.cleanup()


def sqlite_backend(tmp_path: Path) -> Backend:
    path = str(tmp_path / "contract.db")

    def raw(sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, timeout=30)
        try:
            with conn:
                return list(conn.execute(sql, dict(params or {})).fetchall())
        finally:
            conn.close()

    def tables() -> set[str]:
        return {r[0] for r in raw("SELECT name FROM sqlite_master WHERE type = 'table'")}

    return Backend("sqlite", "sqlite", lambda: SqliteDatabase(path), raw, path, tables)


def postgres_backend() -> Backend:
    import psycopg

    from cloaca.store.drivers.postgres import PostgresDatabase

    url = require_postgres()
    schema = f"cloaca_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def raw(sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            cur = conn.execute(re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql), dict(params or {}))
            return list(cur.fetchall()) if cur.description else []

    def tables() -> set[str]:
        rows = raw(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema",
            {"schema": schema},
        )
        return {r[0] for r in rows}

    return Backend(
        "postgres",
        "postgres",
        lambda: PostgresDatabase(url, schema=schema, pool_size=4),
        raw,
        schema,
        tables,
        cleanup=lambda: drop_schema(url, schema),
    )
