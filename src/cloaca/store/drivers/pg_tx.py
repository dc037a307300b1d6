"""How the PostgreSQL driver's statements travel to the server.

A write transaction (:class:`PgWriteTx`) binds each statement's parameters on the client
(:func:`literal`: strings, integers, booleans and NULL by our own quoting, anything else
by psycopg's ``ClientCursor``) and keeps the statement in a buffer. BEGIN and every
statement whose result nobody reads yet (:meth:`~PgWriteTx.send`, ``run_many``,
:meth:`~PgWriteTx.later`) wait there. They go to
the server as ONE query string (the simple query protocol) with the next statement whose
result is read, or with the COMMIT: one round trip and one packet each way, however many
statements the buffer holds. The server runs them in order and stops at the first error,
which fails the transaction. psycopg's pipeline mode, used before, did the same work with
about twice the client CPU and more wall time: it flushes and polls the socket for every
statement and sends one more sync as it leaves pipeline mode.

The simple query protocol has no parameters, so it would plan every statement anew (about
0.2 ms of server time for a claim or an outcome's statement here). So each named query a
connection has run once is then prepared on it (:class:`Prepared`, right after the
transaction, outside any), and later runs as ``EXECUTE q_<name>(<literals>)``: planned
once per connection, as psycopg's own prepared statements were.

A read (:class:`PgReadTx`) runs each statement on its own, autocommit, the same way.
psycopg's own prepared statements are off (``prepare_threshold=None``): psycopg answers
a ROLLBACK with ``DEALLOCATE ALL`` when it has prepared anything, which would drop ours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloaca.store.db import Later, Params, Row
from cloaca.store.drivers.cursor import CursorTx

if TYPE_CHECKING:
    from cloaca.store.drivers.postgres import PostgresDatabase

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
#: Strings longer than this are sent dollar-quoted (see PgTx._literal).
_LONG = 2048
_TAG = "$cloaca$"


@functools.lru_cache(maxsize=1024)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """A named query's text with ``$n`` placeholders (for PREPARE), and the parameter
    name of each ``$n`` in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


class Prepared:
    """The named queries prepared on one connection (``q_<name>``), those that could not
    be (run with literals for good), and those it ran since that wait to be prepared."""

    __slots__ = ("ready", "failed", "wanted")

    def __init__(self) -> None:
        self.ready: set[str] = set()
        self.failed: set[str] = set()
        self.wanted: set[str] = set()

    def prepare_wanted(self, conn: Any, queries: dict[str, str]) -> None:
        """Prepare what the connection ran since the last call (it must be idle, outside
        a transaction). A query the server refuses to prepare is run with literals."""
        wanted, self.wanted = self.wanted, set()
        for name in sorted(wanted):
            text, _ = positional(queries[name])
            try:
                conn.execute(f"PREPARE q_{name} AS {text}", prepare=False)
            except Exception:
                self.failed.add(name)
                if conn.closed or conn.broken:
                    return
            else:
                self.ready.add(name)


_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK: the statement returned rows (maybe none)


def _has_rows(cur: Any) -> bool:
    """Whether the cursor's current result is rows (a SELECT or RETURNING), not a command
    tag. Cheaper than ``cur.description``, which builds a Column object per column."""
    result = cur.pgresult
    return result is not None and result.status == _TUPLES_OK


def literal(value: Any) -> str | None:
    """A string, integer, boolean or NULL as SQL text, or ``None`` for psycopg to quote.

    Connections run with ``standard_conforming_strings`` on (the server's default, and the
    pool sets it), so inside ``'...'`` only the quote itself is special: it is doubled. A
    long string is dollar-quoted instead (a copy, not a scan that doubles quotes: a 100 KB
    context), unless the tag occurs in it (a value ending in ``$cloaca`` would close it
    early). A NUL, which no PostgreSQL text can hold, is left to psycopg, which refuses it.
    A negative integer gets a space in front: ``-%(x)s`` must not become a ``--`` comment.
    A list of strings becomes an untyped array literal, ``'{"a","b"}'`` (every element in
    double quotes, each backslash and double quote in it escaped by a backslash), as psycopg
    writes one.
    """
    kind = type(value)
    if kind is str:
        if "\0" in value:
            return None
        if len(value) > _LONG:
            quoted = f"{value}{_TAG}"
            if quoted.find(_TAG) == len(value):
                return f"{_TAG}{quoted}"
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value) if value >= 0 else f" {value}"
    if kind is list and all(type(v) is str and "\0" not in v for v in value):
        items = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        return "'{" + items.replace("'", "''") + "}'"
    return None


class PgTx(CursorTx):
    """What both kinds of PostgreSQL transaction share: ``_cur`` is a ``ClientCursor`` on
    the borrowed connection, and :meth:`_bind` turns a named query into the text to send.
    ``notified``: payloads this transaction already sent; PostgreSQL delivers identical
    notifications of one transaction once, so sending one again would only cost work."""

    __slots__ = ("notified", "_db", "_prepared")

    def __init__(self, db: PostgresDatabase, cur: Any, prepared: Prepared) -> None:
        super().__init__(cur, db._queries, "postgres")
        self.notified: set[str] = set()
        self._db = db
        self._prepared = prepared

    def _bind(self, query: str, params: Params | None) -> str:
        sql = self._sql(query)
        prepared = self._prepared
        if query in prepared.ready:
            _, names = positional(sql)
            if not names:
                return f"EXECUTE q_{query}"
            given = params or {}
            args = ", ".join([self._literal(given[n]) for n in names])
            return f"EXECUTE q_{query}({args})"
        if query not in prepared.failed:
            prepared.wanted.add(query)
        if not params:
            return sql
        given = params
        return _PLACEHOLDER.sub(lambda m: self._literal(given[m.group(1)]), sql)

    def _literal(self, value: Any) -> str:
        """One value as SQL text: :func:`literal`, or psycopg's quoting for the rest."""
        text = literal(value)
        return text if text is not None else str(self._cur.mogrify("%s", [value]))


class PgReadTx(PgTx):
    """Statements on an autocommit connection, each its own round trip."""

    __slots__ = ()

    def _execute(self, query: str, params: Params | None) -> None:
        self._cur.execute(self._bind(query, params))
        self._db.round_trips += 1

    def one(self, query: str, params: Params | None = None) -> Row | None:
        self._execute(query, params)
        if not _has_rows(self._cur):
            return None
        rows = self._cur.fetchall()
        return rows[0] if rows else None

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        self._execute(query, params)
        return list(self._cur.fetchall()) if _has_rows(self._cur) else []

    def run(self, query: str, params: Params | None = None) -> int:
        self._execute(query, params)
        return int(self._cur.rowcount)

    def send(self, query: str, params: Params | None = None) -> None:
        self._execute(query, params)

    def run_many(self, query: str, params: Any) -> None:
        for one in params:
            self._execute(query, one)

    def later(self, query: str, params: Params | None = None) -> Later:
        later = Later()
        later.set(self.all(query, params))  # autocommit: it is committed already
        return later


class PgWriteTx(PgTx):
    """A write transaction whose statements wait in a buffer until a result is read (see
    the module's docstring)."""

    __slots__ = ("_buffer", "_later_at", "_ready", "_began")

    def __init__(self, db: PostgresDatabase, cur: Any, prepared: Prepared) -> None:
        super().__init__(db, cur, prepared)
        self._buffer: list[str] = ["BEGIN"]
        # Statements of the buffer sent with later(): their index -> what receives the rows.
        self._later_at: dict[int, Later] = {}
        # Rows of later() statements already run, handed over at the COMMIT.
        self._ready: list[tuple[Later, list[Row]]] = []
        self._began = False  # BEGIN has reached the server

    def _flush(self, rows_from: int | None = None) -> list[list[Row]]:
        """Send the buffer as one query string and wait for its results; the cursor is left
        on the last statement's result. Returns the rows of each statement from index
        ``rows_from`` on (none unless it is given)."""
        statements, later_at = self._buffer, self._later_at
        self._buffer, self._later_at = [], {}
        self._began = True
        cur = self._cur
        try:
            cur.execute(";\n".join(statements))
        except BaseException:
            for failed in later_at.values():
                failed.fail()
            raise
        finally:
            self._db.round_trips += 1
        last = len(statements) - 1
        collected: list[list[Row]] = []
        for index in range(last + 1):
            waiting = later_at.get(index)
            if waiting is not None:
                rows = list(cur.fetchall()) if _has_rows(cur) else []
                self._ready.append((waiting, rows))
            elif rows_from is not None and index >= rows_from:
                collected.append(list(cur.fetchall()) if _has_rows(cur) else [])
            if index < last:
                cur.nextset()
        return collected

    def _read(self, query: str, params: Params | None) -> Any:
        self._buffer.append(self._bind(query, params))
        self._flush()
        return self._cur

    def one(self, query: str, params: Params | None = None) -> Row | None:
        cur = self._read(query, params)
        if not _has_rows(cur):
            return None
        rows = cur.fetchall()
        return rows[0] if rows else None

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        cur = self._read(query, params)
        return list(cur.fetchall()) if _has_rows(cur) else []

    def run(self, query: str, params: Params | None = None) -> int:
        return int(self._read(query, params).rowcount)

    def all_each(self, query: str, params: Sequence[Params]) -> list[list[Row]]:
        if not params:
            return []
        first = len(self._buffer)
        self._buffer.extend(self._bind(query, p) for p in params)
        return self._flush(rows_from=first)

    def send(self, query: str, params: Params | None = None) -> None:
        self._buffer.append(self._bind(query, params))

    def run_many(self, query: str, params: Any) -> None:
        self._buffer.extend(self._bind(query, p) for p in params)

    def later(self, query: str, params: Params | None = None) -> Later:
        later = Later()
        self._later_at[len(self._buffer)] = later
        self._buffer.append(self._bind(query, params))
        return later

    def script(self, sql: str) -> None:
        """DDL statements (migrations), run at once."""
        self._buffer.extend(s for s in sql.split(";") if s.strip())
        self._flush()

    def commit(self) -> None:
        """COMMIT with whatever still waits in the buffer (a transaction that never sent
        anything costs nothing); then hand ``later()`` statements their rows."""
        if self._began or len(self._buffer) > 1:
            self._buffer.append("COMMIT")
            self._flush()
        for later, rows in self._ready:
            later.set(rows)

    def rollback(self) -> None:
        """End a failed transaction: ROLLBACK if anything reached the server; no
        ``later()`` statement will have rows."""
        for later in [*self._later_at.values(), *(later for later, _ in self._ready)]:
            later.fail()
        self._buffer.clear()
        self._later_at.clear()
        self._ready.clear()
        if self._began:
            self._cur.execute("ROLLBACK")
