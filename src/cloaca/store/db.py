"""The database seam: one Protocol per capability every driver implements (queries and
scripts inside a transaction, transactions, notifications), and the errors drivers raise.

SQL is data: each dialect keeps its statements in ``sql/<dialect>/*.sql`` files as named
queries (a ``-- name: <query>`` line starts each one). The Store asks a :class:`Tx` to run a
query *by name* with bound parameters; it never builds SQL text itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, Protocol, runtime_checkable

from cloaca.errors import (  # noqa: F401  (their home was here)
    NotACloacaDatabase,
    SchemaTooNew,
    StoreError,
    TransientStoreError,
)

Params = Mapping[str, Any]

#: The LIMIT parameter meaning "no limit" in every dialect's SQL (SQLite reads a negative
#: LIMIT that way; the PostgreSQL queries map it to NULL).
NO_LIMIT = -1


def limit_param(limit: int | None) -> int:
    """A listing's ``limit`` argument as the LIMIT parameter (None: no limit)."""
    return NO_LIMIT if limit is None else limit


Row = Mapping[str, Any]


class Later:
    """The rows of a statement sent with :meth:`Queries.later`: readable once its
    transaction has committed (on PostgreSQL they arrive with the COMMIT)."""

    __slots__ = ("_rows", "_ended")

    def __init__(self) -> None:
        self._rows: list[Row] | None = None
        self._ended = threading.Event()  # committed, or rolled back

    def set(self, rows: list[Row]) -> None:
        """The driver hands over the rows: the transaction committed."""
        self._rows = rows
        self._ended.set()

    def fail(self) -> None:
        """The driver says the transaction rolled back: there will be no rows."""
        self._ended.set()

    def wait(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the transaction to end; True if it committed."""
        return self._ended.wait(timeout) and self._rows is not None

    @property
    def rows(self) -> list[Row]:
        """The statement's rows (``StoreError`` unless its transaction committed)."""
        if self._rows is None:
            raise StoreError("a later statement's rows are read before its transaction ended")
        return self._rows


@runtime_checkable
class Queries(Protocol):
    """Capability: run the dialect's named queries inside one open transaction."""

    def one(self, query: str, params: Params | None = None) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        ...

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        """Run a query and return every row."""
        ...

    def run(self, query: str, params: Params | None = None) -> int:
        """Run a statement and return the number of rows it changed."""
        ...

    def all_each(self, query: str, params: Sequence[Params]) -> list[list[Row]]:
        """Run a query once per parameter set, in order, and return each run's rows.
        PostgreSQL sends them all in one round trip: a later run sees what an earlier one
        changed, but the caller sees no result before the last run is done."""
        ...

    def run_many(self, query: str, params: Sequence[Params]) -> None:
        """Run a statement once per parameter set."""
        ...

    def send(self, query: str, params: Params | None = None) -> None:
        """Run a statement whose result nobody reads. PostgreSQL sends it with the next
        statement whose result is read, or with the COMMIT, so it costs no round trip of
        its own; its error, if any, is raised there at the latest."""
        ...

    def later(self, query: str, params: Params | None = None) -> Later:
        """Run a statement whose rows the caller reads only after the transaction
        committed (a claim whose claimed rows are used once the claim is durable).
        PostgreSQL sends it with the COMMIT, so it costs no round trip of its own; the
        rows show what the statement did inside the transaction, which commits as a
        whole or not at all. Nothing may depend on them inside the transaction."""
        ...


@runtime_checkable
class Scripts(Protocol):
    """Capability: run raw DDL text inside one open transaction (migrations only)."""

    def script(self, sql: str) -> None:
        """Run DDL statements separated by ``;``."""
        ...


@runtime_checkable
class Tx(Queries, Scripts, Protocol):
    """One open transaction of a driver: named queries and DDL scripts."""


@runtime_checkable
class Transactions(Protocol):
    """Capability: open transactions on one database that speaks one dialect."""

    #: The dialect of the SQL files the driver runs (``sqlite``, ``postgres``).
    dialect: str
    #: Where the database is (a file path, ``:memory:`` or a URL), for messages.
    path: str
    #: How many write transactions were opened (observability: benchmarks count them).
    write_transactions: int

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction (committed on success, rolled back on error)."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read: statements that see committed data and change nothing. Each
        statement sees everything committed before it started, but two statements of one
        read may see different commits (PostgreSQL runs them without BEGIN/COMMIT, which
        saves two round trips). A read that needs one snapshot across statements reads
        inside :meth:`write`."""
        ...

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (cheap to read)."""
        ...

    def close(self) -> None:
        """Release every connection (and stop listening)."""
        ...


#: While notifications are heard (``Notifications.hearing``), how often a process still
#: looks at the database for what they would have told it: a safety net, not a poll.
HEARD_SAFETY_NET_SECONDS = 2.0


@runtime_checkable
class Notifications(Protocol):
    """Capability: tell other processes about a commit, and hear what they tell.

    A driver without a notification channel implements both as explicit no-ops; its
    processes notice each other's commits through :meth:`Transactions.data_version`."""

    @property
    def hearing(self) -> bool:
        """True while notifications from other processes are being delivered (a listening
        connection is up): polling :meth:`Transactions.data_version` is then only a
        safety net and can be rare."""
        ...

    def notify(self, tx: Tx, payload: str) -> None:
        """Send ``payload`` to every listener when ``tx`` commits."""
        ...

    def listen(
        self, callback: Callable[[str], None], on_reconnect: Callable[[], None] | None = None
    ) -> None:
        """Call ``callback(payload)`` for each notification other transactions send;
        ``on_reconnect()`` after a lost listening connection is back (notifications sent
        meanwhile are lost)."""
        ...


@runtime_checkable
class Database(Transactions, Notifications, Protocol):
    """What the Store needs of a driver: every capability above."""


_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(dialect: str) -> dict[str, str]:
    """Read every named query of a dialect from the package's ``sql/<dialect>/`` folder."""
    queries: dict[str, str] = {}
    folder = resources.files("cloaca.store") / "sql" / dialect
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in _split_named(entry.read_text(encoding="utf-8")):
            if name in queries:
                raise StoreError(f"query {name!r} is defined twice in sql/{dialect}")
            queries[name] = body
    return queries


def _split_named(text: str) -> Iterator[tuple[str, str]]:
    matches = list(_NAME.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        if body:
            yield match.group(1), body


def load_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """Return ``(number, name, sql)`` for each numbered migration file, in order."""
    folder = resources.files("cloaca.store") / "sql" / dialect / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)
