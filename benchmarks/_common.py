"""Shared helpers for benchmark scripts: percentiles, RSS, and the one-JSON-line output."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.jsonl"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(values)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quick() -> bool:
    """True when run with --quick (reduced sizes) or BENCH_QUICK=1."""
    return "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"


def emit(workload: str, backend: str, params: dict[str, Any], figures: dict[str, Any]) -> None:
    """Print the result line and append it to benchmarks/results/latest.jsonl."""
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    line = json.dumps(
        {"workload": workload, "backend": backend, "params": params, "figures": rounded}
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    print(line, flush=True)


POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def backend() -> str:
    """``postgres`` when run with --postgres (or BENCH_BACKEND=postgres), else ``sqlite``."""
    if "--postgres" in sys.argv or os.environ.get("BENCH_BACKEND") == "postgres":
        return "postgres"
    return "sqlite"


def spawn_workers(script: str, args: list[str], count: int) -> list[Any]:
    """Start ``count`` worker processes running ``script`` (``python -c``) with ``args``;
    each must print ``up`` once its runner is running, and stop when a line arrives on its
    standard input. Returns them once every one is up."""
    import subprocess

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "up"
    return workers


@contextmanager
def open_runner(tmp: str, name: str, config: Any = None) -> Iterator[Any]:
    """A runner on a fresh database of the chosen backend: a SQLite file in ``tmp``, or a
    PostgreSQL schema of its own (dropped afterwards)."""
    import cloaca

    if backend() == "sqlite":
        with cloaca.DefaultRunner(f"sqlite://{tmp}/{name}.db", config) as runner:
            yield runner
        return
    import psycopg

    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    try:
        with cloaca.DefaultRunner(POSTGRES_URL, config, schema=schema) as runner:
            yield runner
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def database_url(tmp: str, name: str) -> Iterator[str]:
    """A URL of a fresh database of the chosen backend that other processes can open too: a
    SQLite file in ``tmp``, or a PostgreSQL schema of its own named in the URL's search_path
    (dropped afterwards)."""
    if backend() == "sqlite":
        yield f"sqlite://{tmp}/{name}.db"
        return
    import psycopg

    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one read-only query against ``url`` (a database from :func:`database_url`);
    ``?`` placeholders on both backends."""
    if url.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    base, _, options = url.partition("?options=-csearch_path%3D")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{options}"')
        return conn.execute(sql.replace("?", "%s"), params).fetchall()
