"""Dashboard pages on a big database: 100,000 executions (``--quick``: 20,000), every page
timed over HTTP against a live ``cloaca dashboard`` app (uvicorn in this process).

A runner (scheduling off) creates the schema and records three workflows, two trigger
schedules and a cron schedule; then executions with their task executions, trigger fires
(~20 % of executions), cron slots (~10 %) and trigger evaluations are bulk-inserted in a
few transactions straight through the database driver (the engine would take hours to
make this many). The dashboard then reads only through a ManagementClient, as in
production. Figures: ``<page>_p50_ms`` / ``<page>_p99_ms`` over ``--requests`` requests per
page (after one warm-up request), and ``fill_s``. The goal is every page under 200 ms.

Options: ``--quick``, ``--postgres``, ``--executions N``, ``--requests N``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import cloaca
from _common import POSTGRES_URL, backend, emit, percentile, quick
from cloaca import DefaultRunnerConfig, TriggerResult
from cloaca.dashboard.app import create_app
from cloaca.dashboard.server import in_background
from cloaca.runner.management import ManagementClient

TASKS = {"nightly_etl": ["extract", "transform", "load"], "file_processing": ["process"]}
TRIGGERS = ("inbox_watcher", "queue_depth")
EVALUATIONS_PER_TRIGGER = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL")
    parser.add_argument("--executions", type=int, default=20_000 if quick() else 100_000)
    parser.add_argument("--requests", type=int, default=10 if quick() else 30)
    return parser.parse_args()


def _t(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _define(runner: Any) -> str:
    """Workflows, triggers and a cron schedule, recorded by a real runner."""
    for name, task_ids in TASKS.items():
        previous: list[str] = []
        tasks = []
        for task_id in task_ids:
            cloaca.task(id=f"{name}.{task_id}", dependencies=previous)(lambda context: None)
            tasks.append(f"{name}.{task_id}")
            previous = [f"{name}.{task_id}"]
        cloaca.workflow(name, tasks)
    for trigger in TRIGGERS:
        cloaca.trigger(name=trigger, poll_interval="30s")(lambda: TriggerResult.skip())
        runner.register_trigger(trigger, "file_processing")
    return str(runner.register_cron_workflow("nightly_etl", "*/5 * * * *"))


INSERTS = {
    "executions": "INSERT INTO cloaca_executions (id, workflow_name, workflow_version, status, "
    "context, final_context, error_message, remaining_tasks, created_at, started_at, "
    "completed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s)",
    "tasks": "INSERT INTO cloaca_task_executions (execution_id, workflow_name, workflow_version, "
    "task_id, position, status, attempt, max_attempts, started_at, completed_at, error) "
    "VALUES (%s, %s, %s, %s, %s, %s, 1, 3, %s, %s, %s)",
    "fires": "INSERT INTO cloaca_trigger_executions (id, schedule_id, trigger_name, context_hash, "
    "workflow_execution_id, started_at, completed_at, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
    "slots": "INSERT INTO cloaca_cron_executions (id, schedule_id, scheduled_time, "
    "workflow_execution_id, claimed_at) VALUES (%s, %s, %s, %s, %s)",
    "evaluations": "INSERT INTO cloaca_trigger_evaluations (trigger_name, runner_id, "
    "scheduled_at, evaluated_at, duration_ms, outcome, message, execution_ids) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
}


def _rows(count: int, versions: dict[str, str], schedules: dict[str, str], cron_id: str) -> dict:
    """Every row to insert, deterministic (seeded), oldest execution first."""
    rng = random.Random(7)
    rows: dict[str, list[tuple[Any, ...]]] = {k: [] for k in INSERTS}
    for i in range(count):
        created = START + timedelta(seconds=i * 30)
        kind = rng.random()
        name = "file_processing" if kind < 0.2 else "nightly_etl"
        status = "Failed" if rng.random() < 0.05 else "Completed"
        eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ended = created + timedelta(seconds=rng.uniform(0.2, 40))
        error = "Task 'transform' failed: ValueError: bad row" if status == "Failed" else None
        context = json.dumps({"file": f"data_{i}.csv"})
        rows["executions"].append(
            (
                eid,
                name,
                versions[name],
                status,
                context,
                context,
                error,
                _t(created),
                _t(created),
                _t(ended),
            )
        )
        step = created
        for position, task_id in enumerate(TASKS[name]):
            done = step + (ended - created) / len(TASKS[name])
            failed = status == "Failed" and position == len(TASKS[name]) - 1
            rows["tasks"].append(
                (
                    eid,
                    name,
                    versions[name],
                    f"{name}.{task_id}",
                    position,
                    "Failed" if failed else "Completed",
                    _t(step),
                    _t(done),
                    "ValueError: bad row" if failed else None,
                )
            )
            step = done
        if name == "file_processing":
            trigger = TRIGGERS[i % 2]
            rows["fires"].append(
                (
                    str(uuid.uuid4()),
                    schedules[trigger],
                    trigger,
                    f"{i:016x}",
                    eid,
                    _t(created),
                    _t(ended),
                    _t(created),
                )
            )
        elif kind > 0.9:
            late = created + timedelta(seconds=rng.expovariate(1.0))
            rows["slots"].append((str(uuid.uuid4()), cron_id, _t(created), eid, _t(late)))
    for trigger in TRIGGERS:
        for j in range(EVALUATIONS_PER_TRIGGER):
            at = START + timedelta(seconds=30 * j)
            outcome = rng.choice(["skipped", "skipped", "fired", "deduplicated", "error"])
            message = "ConnectionError: share not mounted" if outcome == "error" else None
            rows["evaluations"].append(
                (trigger, "bench", _t(at), _t(at), rng.uniform(1, 50), outcome, message, "[]")
            )
    return rows


@contextmanager
def _connection(url: str, schema: str | None) -> Iterator[Any]:
    """A raw DB-API connection to the benchmark's database (bulk load only)."""
    if schema is None:
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        yield conn


def _fill(url: str, schema: str | None, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with _connection(url, schema) as conn:
        cur = conn.cursor()
        for table, statement in INSERTS.items():
            sql = statement if schema else statement.replace("%s", "?")
            cur.executemany(sql, rows[table])
        cur.execute("ANALYZE")


def _pages(client: ManagementClient, cron_id: str, executions: int) -> dict[str, str]:
    newest = client.list_executions_page(limit=1)[0]["id"]
    deep = client.list_executions(limit=1, offset=executions // 2)[0]["id"]
    failed = client.list_executions_page(status="Failed", limit=1)[0]["id"]
    return {
        "executions": "/executions",
        "executions_failed": "/executions?status=Failed",
        "executions_workflow": "/executions?workflow=file_processing",
        "executions_trigger": "/executions?started_by=trigger",
        "executions_cron": "/executions?started_by=cron",
        "executions_api_failed": "/executions?started_by=api&status=Failed",
        "executions_deep_page": f"/executions?before={deep}",
        "execution": f"/executions/{newest}",
        "execution_failed": f"/executions/{failed}",
        "workflows": "/workflows",
        "workflow": "/workflows/nightly_etl",
        "triggers": "/triggers",
        "trigger": f"/triggers/{TRIGGERS[0]}",
        "cron": "/cron",
        "cron_schedule": f"/cron/{cron_id}",
        "runners": "/runners",
        "metrics": "/metrics",
    }


@contextmanager
def _database(tmp: str) -> Iterator[tuple[str, str | None]]:
    """``(url, schema)`` of a fresh database: a SQLite file, or a PostgreSQL schema of its
    own (dropped afterwards)."""
    if backend() == "sqlite":
        yield f"sqlite://{tmp}/dashboard.db", None
        return
    import psycopg

    schema = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    try:
        yield POSTGRES_URL, schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    args = _args()
    config = DefaultRunnerConfig(
        enable_cron_scheduling=False, enable_trigger_scheduling=False, enable_recovery=False
    )
    with tempfile.TemporaryDirectory() as tmp, _database(tmp) as (url, schema):
        if schema is None:
            runner = cloaca.DefaultRunner(url, config)
        else:
            runner = cloaca.DefaultRunner(url, config, schema=schema)
        with runner, ManagementClient.open(url, schema=schema) as client:
            cron_id = _define(runner)
            versions = {w["name"]: w["version"] for w in client.list_workflows()}
            schedules = {s["trigger_name"]: s["id"] for s in client.list_trigger_schedules()}
            began = time.perf_counter()
            _fill(url, schema, _rows(args.executions, versions, schedules, cron_id))
            fill_s = time.perf_counter() - began
            figures: dict[str, float] = {"fill_s": fill_s}
            with (
                in_background(create_app(client, refresh_seconds=0)) as base,
                httpx.Client(base_url=base) as http,
            ):
                for page, path in _pages(client, cron_id, args.executions).items():
                    assert http.get(path).status_code == 200, path  # warm-up
                    took = []
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        response = http.get(path)
                        took.append((time.perf_counter() - start) * 1000)
                        assert response.status_code == 200, (path, response.status_code)
                    figures[f"{page}_p50_ms"] = percentile(took, 50)
                    figures[f"{page}_p99_ms"] = percentile(took, 99)
    slowest = max(v for k, v in figures.items() if k.endswith("_p99_ms"))
    figures["slowest_p99_ms"] = slowest
    params = {"executions": args.executions, "requests": args.requests}
    emit("dashboard_pages", backend(), params, figures)


if __name__ == "__main__":
    main()
