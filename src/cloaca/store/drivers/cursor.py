"""What both drivers' transactions share: named-query lookup, batches and DDL scripts over
a DB-API cursor. Only drivers touch the cursor; the Store sees the
:class:`~cloaca.store.db.Tx` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloaca.store.db import Params, StoreError


class CursorTx:
    """A transaction over one DB-API cursor. Drivers add ``one`` / ``all`` / ``run``."""

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

    def all_each(self, query: str, params: Sequence[Params]) -> list[list[Any]]:
        """Run a query once per parameter set and return each run's rows (in order)."""
        return [self.all(query, p) for p in params]  # type: ignore[attr-defined]

    def run_many(self, query: str, params: Sequence[Params]) -> None:
        """Run a statement once per parameter set."""
        if params:
            self._cur.executemany(self._sql(query), params)

    def script(self, sql: str) -> None:
        """Run raw DDL statements (migrations only; statements are split on ``;``)."""
        for statement in sql.split(";"):
            if statement.strip():
                self._cur.execute(statement)
