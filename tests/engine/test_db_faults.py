"""Database faults while a task ends: dropped connections, write locks held too long, a
LISTEN connection that goes away. The outcome is recorded, nothing is left Running."""

from __future__ import annotations

import functools
import importlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.store.db import StoreError, TransientStoreError
from cloaca.store.drivers.sqlite import SqliteDatabase
from pg_support import fresh_database, run_sql

#: How long the runner's connections wait for a lock before the driver gives up (and the
#: engine retries): short, so a lock held for a second outlasts several tries.
LOCK_WAIT_MS = 200


def _until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _gated_workflow(name: str) -> tuple[threading.Event, threading.Event, list[int]]:
    """a -> b, where a's body signals ``started`` and waits for ``release``."""
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    @cloaca.task(id="a")
    def a(context: Context) -> None:
        calls.append(1)
        started.set()
        assert release.wait(30)
        context.set("a", "done")

    @cloaca.task(id="b", dependencies=["a"])
    def b(context: Context) -> None:
        context.set("b", context.get("a"))

    cloaca.workflow(name, [a, b])
    return started, release, calls


def _assert_completed_once(runner: DefaultRunner, execution_id: str, calls: list[int]) -> None:
    result = runner.wait(execution_id, timeout=60)
    assert result.status == "Completed", result.error_message
    assert result.final_context.get("b") == "done"
    assert result.task_results["a"].attempts == 1
    assert calls == [1]  # the body ran once: its outcome was recorded, not re-run


# -- PostgreSQL: the runner's connections are terminated while a task runs -----------------


@pytest.fixture
def pg_url() -> Iterator[tuple[str, str]]:
    """``(url, application_name)``: a fresh schema, with connections tagged so the test
    terminates only its own runner's backends (the server is shared)."""
    app = f"cloaca_fault_{uuid.uuid4().hex[:10]}"
    with fresh_database() as url:
        yield _with_params(url, application_name=app), app


def _with_params(url: str, **params: str) -> str:
    """``url`` with connection parameters added (``options`` are appended to any already
    there, such as the test schema's search_path)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in params.items():
        query[key] = f"{query[key]} {value}" if key == "options" and key in query else value
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _terminate(url: str, app: str) -> int:
    rows = run_sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = :app AND pid <> pg_backend_pid()",
        {"app": app},
    )
    return len(rows)


def test_outcome_is_recorded_after_the_runners_connections_are_terminated(
    pg_url: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, app = pg_url
    started, release, calls = _gated_workflow("killed")
    with DefaultRunner(url) as runner:
        execution_id = runner.start("killed")
        assert started.wait(30)
        # The pool's connections and the LISTEN connection all go.
        assert _terminate(url, app) >= 2
        with caplog.at_level(logging.WARNING):
            release.set()
            _assert_completed_once(runner, execution_id, calls)
        gave_up = [r for r in caplog.records if r.getMessage() == "recording task outcome failed"]
        assert gave_up == []


def test_the_listener_reconnects_and_hears_later_notifications(
    pg_url: tuple[str, str],
) -> None:
    from cloaca.store.drivers.postgres import PostgresDatabase

    url, app = pg_url
    db = PostgresDatabase(url)
    heard: list[str] = []
    reconnected = threading.Event()
    try:
        db.listen(heard.append, on_reconnect=reconnected.set)
        assert _terminate(url, app) >= 1
        assert reconnected.wait(30), "the listener did not reconnect"
        assert db.listen_reconnects >= 1
        run_sql(url, "SELECT pg_notify(:channel, 'after-the-kill')", {"channel": db.channel})
        assert _until(lambda: "after-the-kill" in heard)
    finally:
        db.close()


def test_wait_survives_terminated_connections(pg_url: tuple[str, str]) -> None:
    url, app = pg_url

    @cloaca.task(id="quick")
    def quick(context: Context) -> None:
        context.set("ok", True)

    cloaca.workflow("quick", [quick])
    with DefaultRunner(url) as runner:
        execution_id = runner.start("quick")
        assert runner.wait(execution_id, timeout=30).status == "Completed"
        assert _terminate(url, app) >= 1
        # The pooled connections are dead: the read finds out and retries on new ones.
        assert runner.wait(execution_id, timeout=30).status == "Completed"
        assert runner.get_execution(execution_id).final_context.get("ok") is True


def test_a_lock_timeout_in_the_url_does_not_fail_a_start_while_another_process_migrates(
    pg_url: tuple[str, str],
) -> None:
    """``lock_timeout`` in the URL's options bounds the engine's statements, not the wait for
    another process's migration of the same schema: the runner waits for it and opens."""
    import psycopg

    url, _ = pg_url
    impatient = _with_params(url, options="-c lock_timeout=50")
    with psycopg.connect(url) as other:  # a process migrating: it holds the migration lock
        other.execute("SELECT pg_advisory_xact_lock(823117, hashtext(current_schema()))")
        opened: list[str] = []
        opener = threading.Thread(
            target=lambda: opened.append(DefaultRunner(impatient, start_engine=False).runner_id)
        )
        opener.start()
        time.sleep(0.5)  # ten lock_timeouts
        assert opened == []  # still waiting, not failed
        other.rollback()
    opener.join(30)
    assert len(opened) == 1


# -- a lock held past the driver's lock wait while a task ends (both backends) -----------


@pytest.fixture
def lock_url(backend: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL a runner under test opens, with its lock wait cut to LOCK_WAIT_MS: SQLite's
    busy timeout (a driver constructor argument), PostgreSQL's ``lock_timeout``."""
    if backend == "sqlite":
        runner_module = importlib.import_module("cloaca.runner.database")
        monkeypatch.setattr(
            runner_module,
            "SqliteDatabase",
            functools.partial(SqliteDatabase, busy_timeout_ms=LOCK_WAIT_MS),
        )
        return db_url
    return _with_params(db_url, options=f"-c lock_timeout={LOCK_WAIT_MS}")


@contextmanager
def _held_lock(backend: str, url: str, execution_id: str) -> Iterator[None]:
    """Another connection holds what recording the outcome needs: SQLite's write lock
    (BEGIN IMMEDIATE), or the execution's row lock on PostgreSQL (SELECT ... FOR UPDATE)."""
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as pg:  # not autocommit: the lock lasts until rollback
        pg.execute("SELECT id FROM cloaca_executions WHERE id = %s FOR UPDATE", (execution_id,))
        yield
        pg.rollback()


@pytest.mark.parametrize("held_for", [0.8, 3.0], ids=["within-retries", "past-retries"])
def test_outcome_is_recorded_once_a_long_held_lock_is_released(
    backend: str, lock_url: str, held_for: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Held briefly, the retried transaction gets through; held past every retry, the
    outcome is kept and recorded on a later loop round. Either way the body ran once and
    the execution completes."""
    started, release, calls = _gated_workflow(f"locked_{backend}")
    with DefaultRunner(lock_url) as runner:
        execution_id = runner.start(f"locked_{backend}")
        assert started.wait(30)
        with caplog.at_level(logging.WARNING), _held_lock(backend, lock_url, execution_id):
            release.set()
            time.sleep(held_for)  # the outcome is being recorded against the held lock
            assert runner._store.executions.get(execution_id) is not None  # reads still work
        _assert_completed_once(runner, execution_id, calls)
    assert "failed transiently" in caplog.text  # the lock really was in the way
    if held_for > 2:
        assert "task outcome kept for a later try" in caplog.text
        assert "kept task outcome recorded" in caplog.text


# -- how the drivers classify errors -----------------------------------------------------


def test_sqlite_busy_is_transient_and_other_errors_are_not(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite://")
    db = SqliteDatabase(path, busy_timeout_ms=50)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(TransientStoreError, match="locked"), db.write():
            pass
        other.execute("ROLLBACK")
        with pytest.raises(StoreError) as info, db.write() as tx:
            tx.run("no_such_query")
        assert not isinstance(info.value, TransientStoreError)
    finally:
        other.close()
        db.close()


@pytest.mark.parametrize("value", [-1, 1.5, "200", True])
def test_a_bad_busy_timeout_is_refused(sqlite_url: str, value: Any) -> None:
    with pytest.raises(ValueError, match="busy_timeout_ms"):
        SqliteDatabase(sqlite_url.removeprefix("sqlite://"), busy_timeout_ms=value)


def test_a_runner_outlives_a_store_error_it_cannot_retry(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome the database refuses for good (not transiently) releases the claim: the
    task gets its next attempt instead of staying Running."""
    from cloaca.engine import outcomes

    real_write_all = outcomes.write_all
    refused: list[int] = []

    def write_once_refused(store: Any, tx: Any, runner_id: str, batch: Any, *rest: Any) -> Any:
        if not refused:
            refused.append(1)
            raise StoreError("refused for good")
        return real_write_all(store, tx, runner_id, batch, *rest)

    monkeypatch.setattr(outcomes, "write_all", write_once_refused)
    calls: list[int] = []

    @cloaca.task(id="twice", retry_attempts=2, retry_delay_ms=1)
    def twice(context: Context) -> None:
        calls.append(1)

    cloaca.workflow("refused", [twice])
    config = DefaultRunnerConfig(max_concurrent_tasks=1)
    with DefaultRunner(db_url, config) as runner:
        execution_id = runner.start("refused")
        result = runner.wait(execution_id, timeout=30)
    assert result.status == "Completed"
    assert calls == [1, 1]  # the first outcome was lost, the claim released, one re-run
    assert result.task_results["twice"].attempts == 2
