"""Helpers for tests that run runners in real worker processes: start a script, read the
words it prints, and make sure no process outlives its test."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

WAIT = 15.0  # seconds: the bound of every wait on a worker (never reached when green)


def spawn(script: str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Run ``script`` (Python source) in a new interpreter with ``args`` as ``sys.argv[1:]``;
    stdout and stderr are pipes, ``env`` is added to this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def reap(proc: subprocess.Popen[str]) -> str:
    """Kill ``proc`` if it still runs, wait for it; returns what it wrote to stderr."""
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate(timeout=WAIT)
    return err


@contextmanager
def reaped(procs: list[subprocess.Popen[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Yield ``procs`` (append more inside); every one is reaped on the way out."""
    try:
        yield procs
    finally:
        for proc in procs:
            reap(proc)


#: Output read from a worker past its last complete line (pid -> text), for the next call.
_unread: dict[int, str] = {}


def read_lines(proc: subprocess.Popen[str], wanted: set[str], deadline: float) -> dict[str, str]:
    """Read stdout lines until each word in ``wanted`` started a line; word -> rest.

    Reads the pipe itself rather than through ``proc.stdout``: a buffered reader may hold
    two lines that arrived together while ``select`` sees nothing left to read.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = _unread.pop(proc.pid, "")
    found: dict[str, str] = {}
    try:
        while wanted - found.keys():
            if "\n" in pending:
                line, pending = pending.split("\n", 1)
                word, _, rest = line.strip().partition(" ")
                found[word] = rest
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise AssertionError(f"worker printed only {found} before the deadline")
            chunk = os.read(fd, 65536)
            if not chunk:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"worker exited early (printed {found}): {err}")
            pending += chunk.decode(errors="replace")
    finally:
        _unread[proc.pid] = pending
    return found
