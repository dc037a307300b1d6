"""stdlib ``sqlite3`` driver: WAL, busy timeout, ``BEGIN IMMEDIATE`` for writes.

One connection per runner, guarded by a lock. SQLite serialises writers anyway, and a single
connection lets ``:memory:`` databases work across the runner's threads. Processes sharing a
file coordinate through SQLite's own locking (``busy_timeout``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from cloaca.errors import ValidationError
from cloaca.store.db import (
    Database,
    Later,
    Params,
    Row,
    StoreError,
    TransientStoreError,
    Tx,
    load_queries,
)
from cloaca.store.drivers.cursor import CursorTx
from cloaca.store.migrate import VERSION_TABLE

_BUSY_TIMEOUT_MS = 30_000


class _SqliteTx(CursorTx):
    # ready: rows of later() statements (they ran at once), handed over at the COMMIT.
    __slots__ = ("ready",)

    def __init__(self, cur: sqlite3.Cursor, queries: dict[str, str], dialect: str) -> None:
        super().__init__(cur, queries, dialect)
        self.ready: list[tuple[Later, list[Row]]] = []

    def one(self, query: str, params: Params | None = None) -> Row | None:
        cur = self._cur.execute(self._sql(query), params or {})
        row: Row | None = cur.fetchone()
        # Drain so a RETURNING statement finishes before the transaction moves on.
        cur.fetchall()
        return row

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        return list(self._cur.execute(self._sql(query), params or {}).fetchall())

    def run(self, query: str, params: Params | None = None) -> int:
        return int(self._cur.execute(self._sql(query), params or {}).rowcount)

    def send(self, query: str, params: Params | None = None) -> None:
        self._cur.execute(self._sql(query), params or {})

    def later(self, query: str, params: Params | None = None) -> Later:
        later = Later()
        self.ready.append((later, self.all(query, params)))
        return later


class SqliteDatabase:
    """A SQLite database file (or ``:memory:``) behind the :class:`~cloaca.store.db.Database`
    protocol. SQLite has no notification channel: :meth:`notify` and :meth:`listen` do
    nothing, and processes sharing a file notice each other's commits by
    :meth:`data_version`."""

    dialect = "sqlite"

    def __init__(
        self, path: str, uri: bool = False, busy_timeout_ms: int = _BUSY_TIMEOUT_MS
    ) -> None:
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            raise ValidationError(
                f"busy_timeout_ms={busy_timeout_ms!r} is invalid: expected an int"
            )
        if busy_timeout_ms < 0:
            raise ValidationError(f"busy_timeout_ms={busy_timeout_ms!r} is invalid: expected >= 0")
        self.path = path
        # How long a statement waits for another connection's write lock before failing
        # with "database is locked" (a TransientStoreError the engine retries).
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                path,
                uri=uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise ValidationError(f"cannot open SQLite database {path!r}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            tables = {
                row[0]
                for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            # WAL is a lasting property of the file: leave another application's database as
            # it was (migrate() refuses it right after).
            if not tables or VERSION_TABLE in tables:
                self._enable_wal()
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.OperationalError as exc:
            self._conn.close()
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValidationError(f"{path!r} is not a SQLite database: {exc}") from exc
        self._queries = load_queries("sqlite")
        self.write_transactions = 0  # observability (benchmarks count transactions per task)

    def _enable_wal(self) -> None:
        # Switching a new file to WAL needs a moment of exclusive access, and SQLite's busy
        # handler does not cover it: processes that open the same new file at once would see
        # "database is locked". Retry until one of them has done it (it is permanent).
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_SqliteTx]:
        with self._lock:
            cur = self._conn.cursor()
            tx = _SqliteTx(cur, self._queries, "sqlite")
            try:
                cur.execute(begin)
                yield tx
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                for later, _ in tx.ready:
                    later.fail()
                raise
            else:
                for later, rows in tx.ready:
                    later.set(rows)
            finally:
                cur.close()

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction (``BEGIN IMMEDIATE``: takes the write lock up front)."""
        self.write_transactions += 1
        return self._translated(self._transaction("BEGIN IMMEDIATE"))

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read transaction (a consistent snapshot under WAL)."""
        return self._translated(self._transaction("BEGIN"))

    @contextmanager
    def _translated(self, inner: AbstractContextManager[_SqliteTx]) -> Iterator[Tx]:
        try:
            with inner as tx:
                yield tx
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                # Another connection held the write lock past the busy timeout: trying the
                # transaction again later may well succeed.
                raise TransientStoreError(f"sqlite error: {exc}") from exc
            raise StoreError(f"sqlite error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite error: {exc}") from exc

    def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection commits."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @property
    def hearing(self) -> bool:
        """Never: SQLite has no notifications (see :meth:`notify`)."""
        return False

    def notify(self, tx: Tx, payload: str) -> None:
        """Nothing: other processes see the commit through :meth:`data_version`."""

    def listen(
        self, callback: Callable[[str], None], on_reconnect: Callable[[], None] | None = None
    ) -> None:
        """Nothing: SQLite sends no notifications (see :meth:`notify`)."""

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _is_locked(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock we need."""
    # Absent on an error sqlite3 did not raise itself (one made by hand has no code).
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended result codes (e.g. SQLITE_BUSY_SNAPSHOT) keep the primary code in the low byte.
    if isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    text = str(exc)
    return "locked" in text or "busy" in text


if TYPE_CHECKING:  # mypy checks this driver against every capability of the seam
    _database: type[Database] = SqliteDatabase
    _tx: type[Tx] = _SqliteTx
