"""The typed database seam (``cloaca.store.db``): each driver implements every capability
Protocol, migrations need only the Transactions capability, notifications work (or are
explicit no-ops) on each backend, and the Store is plumbing plus its query groups."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import pytest
from store_backends import Backend, postgres_backend

from cloaca.store.core import Store
from cloaca.store.db import (
    Database,
    Notifications,
    Queries,
    Scripts,
    StoreError,
    Transactions,
    Tx,
)
from cloaca.store.group import QueryGroup
from cloaca.store.migrate import VERSION_TABLE, current_version, latest_version, migrate
from cloaca.store.records import ExecutionStatus, NewTask, TaskStatus
from pg_support import require_postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: The parameters of ``execution_insert`` for an execution "e1", for statements sent raw.
EXECUTION_ROW = {
    "id": "e1",
    "workflow_name": "wf",
    "version": "v",
    "context": "{}",
    "remaining": 1,
    "now": "2026-01-01T00:00:00.000000Z",
    "status": "Pending",
    "started_at": None,
}


def test_each_driver_implements_every_capability(backend: Backend) -> None:
    db = backend.open_db()
    try:
        for capability in (Transactions, Notifications, Database):
            assert isinstance(db, capability), capability.__name__
        assert db.dialect == backend.dialect
        for opened in (db.write, db.read):
            with opened() as tx:
                for capability in (Queries, Scripts, Tx):
                    assert isinstance(tx, capability), capability.__name__
    finally:
        db.close()


class _OnlyTransactions:
    """A database that offers nothing but the Transactions capability (no notifications),
    counting the transactions migrate opens through it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect = db.dialect
        self.path = db.path
        self.write_transactions = 0
        self.reads = 0

    def write(self) -> AbstractContextManager[Tx]:
        self.write_transactions += 1
        return self._db.write()

    def read(self) -> AbstractContextManager[Tx]:
        self.reads += 1
        return self._db.read()

    def data_version(self) -> int:
        return self._db.data_version()

    def close(self) -> None:
        self._db.close()


def test_migrate_needs_only_the_transactions_capability(backend: Backend) -> None:
    seam = _OnlyTransactions(backend.open_db())
    try:
        assert isinstance(seam, Transactions) and not isinstance(seam, Notifications)
        assert current_version(seam) == 0
        assert migrate(seam) == latest_version(backend.dialect)
        assert seam.write_transactions == 1  # every migration in ONE write transaction
        assert migrate(seam) == latest_version(backend.dialect)  # idempotent
        assert current_version(seam) == latest_version(backend.dialect)
        assert VERSION_TABLE in backend.tables() and "cloaca_executions" in backend.tables()
    finally:
        seam.close()


def test_a_script_runs_each_statement_inside_the_transaction(backend: Backend) -> None:
    db = backend.open_db()
    try:
        with db.write() as tx:
            tx.script("CREATE TABLE seam_a (x INTEGER); CREATE TABLE seam_b (y INTEGER);")
        assert {"seam_a", "seam_b"} <= backend.tables()
    finally:
        db.close()


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        done.wait(0.02)
    return condition()


def test_notifications_reach_listeners_or_are_explicit_no_ops(backend: Backend) -> None:
    listener, sender = backend.open_db(), backend.open_db()
    heard: list[str] = []
    try:
        listener.listen(heard.append)
        with sender.write() as tx:
            sender.notify(tx, "ready:elsewhere")
        if backend.dialect == "postgres":
            assert _until(lambda: heard == ["ready:elsewhere"]), heard
        else:  # SQLite has no channel: notify and listen are no-ops, nothing is heard
            assert heard == []
    finally:
        listener.close()
        sender.close()


def test_a_payload_is_sent_once_per_transaction(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, sender = backend.open_db(), backend.open_db()
    heard: list[str] = []
    statements: list[str] = []
    try:
        listener.listen(heard.append)
        with sender.write() as tx:
            real_send = type(tx).send

            def counting_send(self: object, query: str, params: object = None) -> None:
                statements.append(query)
                real_send(self, query, params)  # type: ignore[arg-type]

            monkeypatch.setattr(type(tx), "send", counting_send)
            for payload in ("ready:a", "ready:a", "finished:e1", "ready:a"):
                sender.notify(tx, payload)
        if backend.dialect == "postgres":
            assert statements.count("notify") == 2  # one statement per distinct payload
            assert _until(lambda: sorted(heard) == ["finished:e1", "ready:a"]), heard
        else:
            assert statements == [] and heard == []
    finally:
        listener.close()
        sender.close()


def test_a_store_notifies_new_work_with_its_origin_and_ended_executions(
    backend: Backend,
) -> None:
    store = backend.open()
    store.origin = "runner-1"
    listener = backend.open_db()
    heard: list[str] = []
    try:
        listener.listen(heard.append)
        with store.write() as tx:
            store.executions.insert(
                tx,
                execution_id="e1",
                workflow_name="wf",
                version="v",
                context_json="{}",
                tasks=[NewTask("a", 0, 1, TaskStatus.READY)],
                now=T0,
            )
        with store.write() as tx:
            assert store.executions.finish(tx, "e1", ExecutionStatus.CANCELLED, T0)
        if backend.dialect == "postgres":
            assert _until(lambda: heard == ["ready:runner-1", "finished:e1"]), heard
        else:  # no channel on SQLite: other processes poll data_version instead
            assert heard == []
    finally:
        listener.close()


def test_the_store_is_plumbing_and_query_groups_only(backend: Backend) -> None:
    store = backend.open()
    try:
        plumbing = {"migrate", "write", "read", "write_retrying", "read_retrying"}
        plumbing |= {"data_version", "close", "origin"}
        public = {n for n in dir(Store) if not n.startswith("_")}
        assert public == plumbing  # no operation of its own: each lives in one group
        groups = {n for n, v in vars(store).items() if not n.startswith("_") and n != "db"}
        assert groups == {"workflows", "executions", "tasks", "runners", "triggers", "cron"} | {
            "retention",
            "admin",
            "overview",
        }
        assert sum(isinstance(getattr(store, g), QueryGroup) for g in groups) == 7
    finally:
        store.close()


def test_a_failed_statement_nobody_waited_for_rolls_the_whole_transaction_back(
    backend: Backend,
) -> None:
    """A statement sent without waiting for its result (``Tx.send``) that fails still fails
    its transaction: nothing of it is committed, and the connection serves the next one."""
    store = backend.open()
    row = EXECUTION_ROW
    with pytest.raises(StoreError), store.write() as tx:
        tx.send(
            "workflow_upsert",
            {"name": "wf", "version": "v", "definition": "{}", "now": row["now"]},
        )
        tx.send("execution_insert", row)
        tx.send("execution_insert", row)  # the same id again: a unique violation
    assert store.executions.get("e1") is None
    assert store.workflows.definition("wf") is None  # the statement before it too
    for _ in range(3):  # every pooled connection is usable again
        with store.write() as tx:
            tx.send("execution_insert", {**row, "id": f"e-{_}"})
        assert store.executions.get(f"e-{_}") is not None


def test_a_later_statement_gives_its_rows_once_the_transaction_committed(
    backend: Backend,
) -> None:
    """``Tx.later``: the statement runs inside the transaction (its rows show what it did
    there, and it commits or rolls back with the rest); its rows are read afterwards."""
    store = backend.open()
    claimed_at = datetime(2026, 1, 1, tzinfo=UTC)
    with store.write() as tx:
        store.executions.insert(
            tx,
            execution_id="e1",
            workflow_name="wf",
            version="v",
            context_json="{}",
            tasks=[NewTask("a", 0, 1, TaskStatus.READY), NewTask("b", 1, 1, TaskStatus.READY)],
            now=claimed_at,
            running=True,
        )
        later = store.tasks.claim_execution_later(tx, "r1", "e1", 5, claimed_at)
        with pytest.raises(StoreError):
            later.rows  # noqa: B018 (reading it is the test)
    claimed = sorted(r["task_id"] for r in later.rows)
    assert claimed == ["a", "b"]
    assert {t.status for t in store.tasks.list_for("e1")} == {TaskStatus.RUNNING}
    duplicate = EXECUTION_ROW
    with pytest.raises(StoreError), store.write() as tx:  # rolled back with the rest
        tx.later(
            "task_claim_execution",
            {"runner_id": "r2", "limit": 5, "now": "x", "execution_id": "e1"},
        )
        tx.send("execution_insert", duplicate)  # a unique violation
    assert {t.claimed_by for t in store.tasks.list_for("e1")} == {"r1"}


@pytest.fixture
def pg_backend() -> Iterator[Backend]:
    """An empty PostgreSQL database, for what only its driver does."""
    made = postgres_backend()
    yield made
    made.close_all()


def test_statements_prepared_on_a_connection_come_back_after_the_server_dropped_them(
    pg_backend: Backend,
) -> None:
    """PostgreSQL runs each named query prepared once it ran on a connection. If the
    server forgets them (DEALLOCATE ALL), the next transaction is transient: run again, it
    succeeds, and the statements are prepared anew."""
    store = pg_backend.open()

    def status(tx: Tx) -> ExecutionStatus | None:
        return store.executions.status(tx, "nope")

    for _ in range(3):  # run, prepared after the first transaction, run prepared
        assert store.write_retrying(status, "reading a status") is None
    with store.write() as tx:
        tx.script("DEALLOCATE ALL")
    for _ in range(3):
        assert store.write_retrying(status, "reading a status") is None
        with store.read() as tx:
            assert status(tx) is None


def test_long_and_awkward_values_round_trip_exactly(backend: Backend) -> None:
    """Values are bound on the client on PostgreSQL (long strings dollar-quoted): quotes,
    backslashes, dollar signs, the quoting tag itself and non-ASCII text come back as
    written, whether the statement runs with literals or prepared."""
    store = backend.open()
    awkward = "it's \\ $$ $cloaca$ $1 %s %(x)s ünïcødé \u2603 \n\t"
    contexts = [awkward, awkward * 200, "$" + "x" * 5000 + "$", "x" * 5000 + "$cloaca"]
    for round_ in range(3):  # the first runs use literals, later ones prepared statements
        for i, text in enumerate(contexts):
            execution_id = f"e-{round_}-{i}"
            with store.write() as tx:
                store.executions.insert(
                    tx,
                    execution_id=execution_id,
                    workflow_name="wf",
                    version="v",
                    context_json=text,
                    tasks=[],
                    now=T0,
                )
            with store.read() as tx:
                assert store.executions.context(tx, execution_id) == text
            record = store.executions.get(execution_id)
            assert record is not None and record.context == text


@pytest.mark.parametrize(
    "value",
    [
        0,
        7,
        -7,
        2**62,
        -(2**62),
        True,
        False,
        None,
        "",
        "it's",
        "back\\slash",
        "'; DROP TABLE x; --",
        "x" * 3000 + "'",
    ],
)
def test_our_literals_read_back_as_the_values_they_quote(value: object) -> None:
    """PostgreSQL statements are bound on the client; strings, integers, booleans and NULL
    by our own quoting. Each comes back from the server as the value it quotes, also
    after a minus sign (a negative integer must not start a ``--`` comment)."""
    import psycopg

    from cloaca.store.drivers.pg_tx import literal

    text = literal(value)
    assert text is not None
    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        assert conn.execute(f"SELECT {text}").fetchone() == (value,)
        if isinstance(value, int) and not isinstance(value, bool):
            assert conn.execute(f"SELECT 1 -{text}").fetchone() == (1 - value,)


@pytest.mark.parametrize(
    "value",
    [[], ["t01"], ["a", "b c", 'q"x', "back\\slash", "it's", "NULL", "{}", ",", ""]],
)
def test_our_array_literals_read_back_as_the_lists_they_quote(value: list[str]) -> None:
    """A list of strings (a task's dependants) is bound as an array literal by our own
    quoting too; it reads back as a text array of the same strings."""
    import psycopg

    from cloaca.store.drivers.pg_tx import literal

    text = literal(value)
    assert text is not None
    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        assert conn.execute(f"SELECT CAST({text} AS TEXT[])").fetchone() == (value,)


def test_values_our_quoting_leaves_to_psycopg() -> None:
    """A NUL (which no PostgreSQL text holds), floats and other types go to psycopg,
    which refuses or quotes them."""
    from cloaca.store.drivers.pg_tx import literal

    for value in ["a\0b", 1.5, float("nan"), b"bytes", T0, ["a\0b"], [1]]:
        assert literal(value) is None


def test_counting_an_outcome_reads_no_other_task_unless_it_ends_the_execution(
    pg_backend: Backend,
) -> None:
    """``task_finish_counting`` runs prepared, and after a few runs PostgreSQL may use its
    generic plan. That plan must still check "does this end the execution?" and "are there
    dependants to plan?" before reading other task rows: in a wide execution, scanning them
    for every outcome cost 0.5 ms and more per outcome."""
    import psycopg

    from cloaca.store.db import load_queries
    from cloaca.store.drivers.pg_tx import literal, positional

    store = pg_backend.open()
    wide = [NewTask(f"t{i}", i, 1, TaskStatus.READY) for i in range(200)]
    with store.write() as tx:
        store.executions.insert(
            tx,
            execution_id="wide",
            workflow_name="wf",
            version="v",
            context_json="{}",
            tasks=wide,
            now=T0,
        )
    (claimed,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    text, names = positional(load_queries("postgres")["task_finish_counting"])
    params = {
        "id": claimed.id,
        "attempt": claimed.attempt,
        "runner_id": "r1",
        "status": "Completed",
        "output": "{}",
        "error": None,
        "traceback": None,
        "ready_at": None,
        "completed_at": "2026-01-01T00:00:00.000000Z",
        "execution_id": "wide",
        "claim_by": None,
    }
    params["dependants"] = []
    args = ", ".join(str(literal(params[n])) for n in names)
    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_backend.location}"')
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE counting AS {text}")
        conn.execute("BEGIN")
        plan = [r[0] for r in conn.execute(f"EXPLAIN (ANALYZE) EXECUTE counting({args})")]
        conn.execute("ROLLBACK")
    scans = [line for line in plan if "on cloaca_task_executions" in line and "Scan" in line]
    read = [line for line in scans if "never executed" not in line]
    # Only the finished task's own row is read (by the first step); the dependants' update
    # and the other tasks of the execution are never scanned.
    assert len(read) == 1, "\n".join(plan)
