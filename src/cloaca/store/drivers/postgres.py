"""psycopg 3 driver (with psycopg_pool): many runner processes on many hosts share one
PostgreSQL database.

Each transaction borrows a pooled connection. Claims use ``FOR UPDATE SKIP LOCKED`` in the
dialect's SQL; migrations take an advisory lock. A runner's tables may live in their own
schema (``DefaultRunner.with_schema``): every pooled connection sets its ``search_path``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from cloaca.errors import ConnectionFailed, ValidationError
from cloaca.names import MAX_IDENTIFIER_BYTES, check_schema_name
from cloaca.store.db import (
    Database,
    StoreError,
    TransientStoreError,
    Tx,
    load_queries,
)
from cloaca.store.drivers.pg_tx import PgReadTx, PgTx, PgWriteTx, Prepared
from cloaca.store.drivers.urls import masked_url
from cloaca.store.retry import Backoff

log = logging.getLogger(__name__)

#: Pauses between attempts to re-open a lost LISTEN connection (it never gives up).
LISTEN_BACKOFF = Backoff(first_delay=0.05, max_delay=2.0)

#: A pooled connection unused for longer than this is pinged before it is lent out.
_PING_AFTER_IDLE_S = 2.0

_CHANNEL_PREFIX = "cloaca"
_CHANNEL_DIGEST_CHARS = 12


def notification_channel(schema: str | None) -> str:
    """The LISTEN/NOTIFY channel of a database (``cloaca``) or of one schema of it
    (``cloaca_<schema>``): notifications are per database, so each schema keeps its own.

    This is the one place the channel is derived, and the one place its length is checked.
    PostgreSQL truncates a longer LISTEN identifier but rejects a longer ``pg_notify``
    channel, so a channel over the identifier limit would never deliver anything. When
    ``cloaca_<schema>`` would be too long, its tail is replaced by a digest of the whole
    schema name: every valid schema name gets a distinct channel that fits. Raises
    ``ValueError`` (naming the schema, its length and the limit) for a schema name that is
    itself not a valid identifier.
    """
    if not schema:  # as everywhere in this driver: no schema means the default one
        return _CHANNEL_PREFIX
    check_schema_name(schema)
    channel = f"{_CHANNEL_PREFIX}_{schema}"
    if len(channel.encode()) > MAX_IDENTIFIER_BYTES:
        digest = hashlib.sha256(schema.encode()).hexdigest()[:_CHANNEL_DIGEST_CHARS]
        keep = MAX_IDENTIFIER_BYTES - len(_CHANNEL_PREFIX) - len(digest) - 2
        channel = f"{_CHANNEL_PREFIX}_{schema[:keep]}_{digest}"
    if len(channel.encode()) > MAX_IDENTIFIER_BYTES:  # a guard on the derivation above
        raise ValidationError(
            f"Schema name {schema!r} ({len(schema)} bytes) derives the notification channel "
            f"{channel!r}, over PostgreSQL's identifier limit of {MAX_IDENTIFIER_BYTES} bytes"
        )
    return channel


#: What a failed connection says when trying again cannot help: a missing database or role,
#: refused credentials, a host name that does not resolve, a malformed URL.
_PERMANENT_CONNECT_FAILURES = (
    "does not exist",
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "failed to resolve host",
    "could not translate host name",
    "invalid dsn",
    "invalid connection option",
    "invalid integer value",
)


def connect_failure(exc: BaseException) -> tuple[bool, str]:
    """``(permanent, reason)`` for a failed connection attempt: whether trying again
    cannot fix it, and the server's reason on one line."""
    text = " ".join(str(exc).split())
    reason = text.rpartition("FATAL:")[2].strip() or text
    lowered = text.lower()
    return any(words in lowered for words in _PERMANENT_CONNECT_FAILURES), reason


def _import_psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (imported for its side effect of being present)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConnectionFailed(
            "PostgreSQL URLs need psycopg 3 and psycopg-pool: pip install 'cloaca[postgres]'"
        ) from exc
    return psycopg


class PostgresDatabase:
    """A PostgreSQL database (optionally one schema of it) behind the
    :class:`~cloaca.store.db.Database` protocol; notifications are LISTEN/NOTIFY on the
    channel of its schema (:func:`notification_channel`)."""

    dialect = "postgres"

    def __init__(self, url: str, schema: str | None = None, pool_size: int = 10) -> None:
        psycopg = _import_psycopg()
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.path = url
        self.schema = schema
        self.channel = notification_channel(schema)
        self._listening = threading.Event()
        self._hearing = False  # a listening connection is up
        self._closed = threading.Event()
        self.listen_reconnects = 0  # observability: how often the listener had to reconnect
        self._psycopg = psycopg
        self._queries = load_queries("postgres")
        self.write_transactions = 0
        # Observability: statements whose result was waited for, plus commits (benchmarks
        # report them per execution; each costs a network round trip).
        self.round_trips = 0
        self._returned_at: dict[int, float] = {}
        # Per pooled connection: the named queries prepared on it (see pg_tx.Prepared).
        self._prepared: weakref.WeakKeyDictionary[Any, Prepared] = weakref.WeakKeyDictionary()
        self._connect_once(url)
        if schema:
            self._create_schema(url, schema)

        def configure(conn: Any) -> None:
            # pg_tx.literal quotes strings for this setting (the server's default).
            settings = "SET standard_conforming_strings TO on"
            if schema:
                settings += f'; SET search_path TO "{schema}"'
            conn.execute(settings)

        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            # No psycopg prepared statements: ours are (see pg_tx), and psycopg would drop
            # them with DEALLOCATE ALL after a ROLLBACK.
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None},
            configure=configure,
            # A connection the server dropped (restart, failover, pg_terminate_backend)
            # is found out and replaced before it is handed out, not by the transaction.
            # Only connections that sat idle are pinged: a ping is a round trip, and one
            # in constant use would have failed (and been discarded) in use already.
            check=self._check_idle,
            open=True,
            name="cloaca",
        )
        try:
            self._pool.wait(timeout=10)
        except PoolTimeout as exc:
            self._pool.close()
            raise ConnectionFailed(
                f"cannot connect to PostgreSQL at {masked_url(url)!r} within 10 s"
            ) from exc

    def _connect_once(self, url: str) -> None:
        """Connect once before the pool does: a failure that cannot go away (no such
        database, role or host; refused credentials) is a ``ValueError`` at once instead of
        the pool retrying it in the background for 10 s."""
        try:
            self._psycopg.connect(url, autocommit=True, connect_timeout=10).close()
        except self._psycopg.OperationalError as exc:
            permanent, reason = connect_failure(exc)
            if permanent:
                raise ConnectionFailed(
                    f"cannot connect to PostgreSQL at {masked_url(url)!r}: {reason}"
                ) from exc
            # Anything else (refused, timed out) may be a server starting: the pool retries.

    def _note_returned(self, conn: Any) -> None:
        """A connection goes back to the pool; remember when (see ``_check_idle``). Not
        the pool's ``reset`` callback: with one, the pool hands every returned connection
        to a worker thread, a thread switch per transaction (and a connection not yet
        back when the next transaction asks for one)."""
        self._returned_at[id(conn)] = time.monotonic()

    def _check_idle(self, conn: Any) -> None:
        """Pool callback: ping a connection that sat unused for a while before lending it
        (raises if it is broken, and the pool replaces it)."""
        returned = self._returned_at.get(id(conn))
        if returned is None or time.monotonic() - returned > _PING_AFTER_IDLE_S:
            type(self._pool).check_connection(conn)

    def _create_schema(self, url: str, schema: str) -> None:
        try:
            with self._psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except self._psycopg.errors.UniqueViolation:
            pass  # another process created it at the same moment
        except self._psycopg.Error as exc:
            raise ValidationError(
                f"Failed to set up schema {schema!r} at {masked_url(url)!r}: {exc}"
            ) from exc

    @contextmanager
    def _transaction(self, begin: bool = True) -> Iterator[PgReadTx | PgWriteTx]:
        try:
            with self._pool.connection() as conn:
                prepared = self._prepared.get(conn)
                if prepared is None:
                    prepared = self._prepared[conn] = Prepared()
                try:
                    with self._psycopg.ClientCursor(conn) as cur:
                        if not begin:
                            yield PgReadTx(self, cur, prepared)
                        else:
                            tx = PgWriteTx(self, cur, prepared)
                            try:
                                yield tx
                            except BaseException:
                                _rollback(tx)
                                raise
                            try:
                                tx.commit()
                            except BaseException:
                                _rollback(tx)  # a statement that waited for COMMIT failed
                                raise
                    if prepared.wanted:  # first runs on this connection: plan them once
                        prepared.prepare_wanted(conn, self._queries)
                except self._psycopg.errors.InvalidSqlStatementName as exc:
                    # Our prepared statements are gone (DISCARD ALL, DEALLOCATE): forget
                    # them; the transaction runs again with literals, then re-prepares.
                    prepared.ready.clear()
                    raise TransientStoreError(f"postgres error: {exc}") from exc
                finally:
                    self._note_returned(conn)
        except self._psycopg.OperationalError as exc:
            # Lost connections, pool timeouts, serialization failures, deadlocks, lock
            # timeouts, admin shutdowns: the whole transaction may succeed if tried again.
            raise TransientStoreError(f"postgres error: {exc}") from exc
        except self._psycopg.Error as exc:
            raise StoreError(f"postgres error: {exc}") from exc

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction on a pooled connection."""
        self.write_transactions += 1
        return self._transaction()

    def read(self) -> AbstractContextManager[Tx]:
        """Statements on a pooled autocommit connection: each is its own transaction, so a
        read costs no BEGIN and COMMIT round trips (see :meth:`Transactions.read`)."""
        return self._transaction(begin=False)

    def data_version(self) -> int:
        """The server's WAL insert position: it moves whenever anything is committed."""
        with self._transaction(begin=False) as tx:
            row = tx.one("data_version")
        return int(row["v"]) if row else 0

    @property
    def hearing(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._hearing

    def notify(self, tx: Tx, payload: str) -> None:
        """``pg_notify`` on this database's channel: listeners hear it when ``tx`` commits
        (once per payload and transaction, as PostgreSQL delivers it)."""
        sent = tx.notified if isinstance(tx, PgTx) else None
        if sent is not None:
            if payload in sent:
                return
            sent.add(payload)
        tx.send("notify", {"channel": self.channel, "payload": payload})

    def listen(
        self, callback: Callable[[str], None], on_reconnect: Callable[[], None] | None = None
    ) -> None:
        """Call ``callback(payload)`` for every notification other transactions send on this
        database's channel (on a daemon thread with its own connection).

        A lost connection is re-opened with backoff until :meth:`close`; notifications sent
        meanwhile are lost, so ``on_reconnect()`` is called after each reconnection to let
        the caller look at the database once. The first connection is opened here: an
        unreachable database raises at once."""
        conn = self._listen_connection()
        self._listening.set()
        self._hearing = True
        threading.Thread(
            target=self._listen_loop,
            args=(conn, callback, on_reconnect),
            name="cloaca-listen",
            daemon=True,
        ).start()

    def _listen_connection(self) -> Any:
        conn = self._psycopg.connect(self.path, autocommit=True)
        try:
            conn.execute(f'LISTEN "{self.channel}"')
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen_loop(
        self,
        conn: Any,
        callback: Callable[[str], None],
        on_reconnect: Callable[[], None] | None,
    ) -> None:
        failures = 0
        try:
            while self._listening.is_set():
                if conn is None:
                    try:
                        conn = self._listen_connection()
                    except self._psycopg.Error as exc:
                        failures += 1
                        delay = LISTEN_BACKOFF.delay(failures)
                        log.warning(
                            "re-opening the LISTEN connection failed; next try in %.2fs: %s",
                            delay,
                            exc,
                            extra={"channel": self.channel, "failures": failures},
                        )
                        self._closed.wait(delay)
                        continue
                    failures = 0
                    self._hearing = True
                    self.listen_reconnects += 1
                    log.info("LISTEN connection re-opened", extra={"channel": self.channel})
                    if on_reconnect is not None:
                        _call_quietly(on_reconnect)
                try:
                    for note in conn.notifies(timeout=0.5):
                        _call_quietly(callback, note.payload)
                except self._psycopg.Error as exc:
                    log.warning(
                        "LISTEN connection lost; reconnecting: %s",
                        exc,
                        extra={"channel": self.channel},
                    )
                    self._hearing = False
                    _close_quietly(conn)
                    conn = None
                    failures += 1
                    self._closed.wait(LISTEN_BACKOFF.delay(failures))
        finally:
            self._hearing = False
            if conn is not None:
                _close_quietly(conn)

    def close(self) -> None:
        """Stop listening and close every pooled connection."""
        self._listening.clear()
        self._closed.set()
        self._pool.close()


def _rollback(tx: PgWriteTx) -> None:
    """End a failed write transaction (a broken connection is discarded by the pool)."""
    try:
        tx.rollback()
    except Exception:  # the error being raised already says what went wrong
        log.debug("rollback after a failed transaction failed", exc_info=True)


def _call_quietly(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("handling a PostgreSQL notification failed")


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # pragma: no cover - closing a broken connection
        log.debug("closing a broken LISTEN connection failed", exc_info=True)


if TYPE_CHECKING:  # mypy checks this driver against every capability of the seam
    _database: type[Database] = PostgresDatabase
    _read_tx: type[Tx] = PgReadTx
    _write_tx: type[Tx] = PgWriteTx
