"""Numbered migrations and the schema version table.

Each dialect has ``sql/<dialect>/migrations/NNNN_name.sql``. ``cloaca_schema_version``
records what was applied. Migrating runs inside one write transaction, which on SQLite
takes the database write lock, so several processes starting at once apply each migration
exactly once.
"""

from __future__ import annotations

import logging

from cloaca.clock import SystemClock, to_db_time
from cloaca.store.db import NotACloacaDatabase, SchemaTooNew, Transactions, Tx, load_migrations

log = logging.getLogger(__name__)

VERSION_TABLE = "cloaca_schema_version"


def latest_version(dialect: str) -> int:
    """The highest migration number this build of cloaca knows."""
    migrations = load_migrations(dialect)
    return migrations[-1][0] if migrations else 0


def migrate(db: Transactions) -> int:
    """Bring ``db`` to the latest schema; return the version now in place.

    Raises :class:`NotACloacaDatabase` for a database that has tables but no version table,
    and :class:`SchemaTooNew` for one migrated by a newer cloaca.
    """
    migrations = load_migrations(db.dialect)
    latest = migrations[-1][0] if migrations else 0
    with db.write() as tx:
        tx.one("migrate_lock")  # PostgreSQL: an advisory lock serialises racing processes
        current = _current_version(tx, db)
        if current > latest:
            raise SchemaTooNew(
                f"database schema version {current} is newer than this cloaca supports "
                f"(latest {latest}); upgrade cloaca to open it"
            )
        for number, name, sql in migrations:
            if number <= current:
                continue
            log.info("applying migration %04d_%s", number, name, extra={"migration": number})
            tx.script(sql)
            tx.run(
                "schema_version_insert",
                {"version": number, "applied_at": to_db_time(SystemClock().now())},
            )
        return latest


def current_version(db: Transactions) -> int:
    """The schema version recorded in ``db`` (0 for an empty database)."""
    with db.read() as tx:
        return _current_version(tx, db)


def _current_version(tx: Tx, db: Transactions) -> int:
    tables = {row["name"] for row in tx.all("list_tables")}
    if VERSION_TABLE not in tables:
        user_tables = {t for t in tables if not t.startswith("sqlite_")}
        if user_tables:
            shown = ", ".join(sorted(user_tables)[:5])
            raise NotACloacaDatabase(
                f"database {db.path!r} is not a cloaca database: it holds "
                f"tables ({shown}) but no {VERSION_TABLE} table"
            )
        tx.script(
            f"CREATE TABLE {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        return 0
    row = tx.one("schema_version_current")
    return int(row["version"]) if row and row["version"] is not None else 0
