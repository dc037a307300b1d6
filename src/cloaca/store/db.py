"""The tiny database protocol every driver implements, and the errors drivers raise.

SQL is data: each dialect keeps its statements in ``sql/<dialect>/*.sql`` files as named
queries (a ``-- name: <query>`` line starts each one). The Store asks a :class:`Tx` to run a
query *by name* with bound parameters; it never builds SQL text itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, Protocol

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


class Tx(Protocol):
    """One open transaction. Statements are addressed by query name."""

    def one(self, query: str, params: Params | None = None) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        ...

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        """Run a query and return every row."""
        ...

    def run(self, query: str, params: Params | None = None) -> int:
        """Run a statement and return the number of rows it changed."""
        ...

    def run_many(self, query: str, params: Sequence[Params]) -> None:
        """Run a statement once per parameter set."""
        ...


class CursorTx:
    """What both drivers' transactions share: named-query lookup, batches and DDL scripts
    over a DB-API cursor. Drivers add ``one`` / ``all`` / ``run``."""

    __slots__ = ("_cur", "_queries", "_dialect")

    def __init__(self, cur: Any, queries: dict[str, str], dialect: str) -> None:
        self._cur = cur
        self._queries = queries
        self._dialect = dialect

    def _sql(self, query: str) -> str:
        try:
            return self._queries[query]
        except KeyError:
            raise StoreError(f"unknown query {query!r} for {self._dialect}") from None

    def run_many(self, query: str, params: Sequence[Params]) -> None:
        """Run a statement once per parameter set."""
        if params:
            self._cur.executemany(self._sql(query), params)

    def script(self, sql: str) -> None:
        """Run raw DDL statements (migrations only; statements are split on ``;``)."""
        for statement in sql.split(";"):
            if statement.strip():
                self._cur.execute(statement)


class Database(Protocol):
    """A connection (or pool) to one database, speaking one dialect."""

    dialect: str

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction (committed on success, rolled back on error)."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read-only transaction."""
        ...

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (cheap to read)."""
        ...

    def close(self) -> None:
        """Release every connection."""
        ...


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
