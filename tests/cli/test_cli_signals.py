"""Stopping a real ``cloaca run`` process: the first Ctrl-C (or SIGTERM) says what it waits
for and waits; a second one exits at once, and the abandoned task is taken over by another
worker — nothing is lost (#11)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

from cli_support import CLOACA

from cloaca.runner.management import ManagementClient
from waiting import wait_for

WAIT = 20.0

HOLDING_APP = textwrap.dedent(
    """
    import os, time
    import cloaca

    FOLDER = os.environ["HOLD_DIR"]

    @cloaca.task(id="hold", retry_attempts=3)
    def hold(context):
        open(os.path.join(FOLDER, "started"), "a").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(FOLDER, "release")):
            if time.monotonic() > deadline:
                raise RuntimeError("never released")
            time.sleep(0.05)
        context.set("released", True)

    cloaca.workflow("held", [hold])
    """
)


class Worker:
    """A ``cloaca run`` process whose stdout lines are collected as they come."""

    def __init__(self, url: str, folder: Path, *args: str) -> None:
        app = folder / "holding_app.py"
        app.write_text(HOLDING_APP)
        self.log = (folder / f"stderr-{time.monotonic_ns()}.txt").open("w")
        self.proc = subprocess.Popen(
            [CLOACA, "run", str(app), "--db", url, "--log-format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "HOLD_DIR": str(folder)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line_with(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None or not self.lines.empty(), self.seen
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.reader.join(WAIT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()


def _status(url: str, execution_id: str) -> str:
    client = ManagementClient.open(url)
    try:
        return client.get_execution(execution_id).status
    finally:
        client.close()


def _start_held(url: str) -> str:
    client = ManagementClient.open(url)
    try:
        return client.start("held")
    finally:
        client.close()


def test_ctrl_c_says_what_it_waits_for_and_waits(db_url: str, tmp_path: Path) -> None:
    worker = Worker(db_url, tmp_path)
    try:
        worker.line_with("cloaca worker")
        execution_id = _start_held(db_url)
        wait_for((tmp_path / "started").exists, "the task to start", WAIT)

        worker.proc.send_signal(signal.SIGINT)
        line = worker.line_with("shutting down")
        assert "waiting up to 30s for 1 running task (Ctrl-C again to stop now" in line
        assert worker.proc.poll() is None  # still waiting for the task
        (tmp_path / "release").touch()
        assert worker.proc.wait(WAIT) == 0
        worker.line_with("stopped")
        assert _status(db_url, execution_id) == "Completed"
    finally:
        worker.stop()


def test_sigterm_then_a_second_signal_exits_now_and_another_worker_takes_over(
    db_url: str, tmp_path: Path
) -> None:
    # A worker's claims are taken over once ITS OWN threshold has passed since its last beat.
    fast = (
        "--set", "stale_claim_threshold_seconds=1",
        "--set", "heartbeat_interval_seconds=0.2",
        "--set", "stale_claim_sweep_interval_seconds=0.2",
    )  # fmt: skip
    first = Worker(db_url, tmp_path, *fast)
    second: Worker | None = None
    try:
        first.line_with("cloaca worker")
        execution_id = _start_held(db_url)
        wait_for((tmp_path / "started").exists, "the task to start", WAIT)

        first.proc.send_signal(signal.SIGTERM)  # like the first Ctrl-C
        assert "for 1 running task" in first.line_with("shutting down")
        began = time.monotonic()
        first.proc.send_signal(signal.SIGINT)
        assert first.proc.wait(WAIT) == 128 + signal.SIGINT
        assert time.monotonic() - began < 5
        assert "Nothing is lost" in first.line_with("stopping now")
        assert _status(db_url, execution_id) == "Running"  # abandoned, still claimed

        (tmp_path / "release").touch()
        second = Worker(db_url, tmp_path, *fast)
        second.line_with("cloaca worker")
        wait_for(lambda: _status(db_url, execution_id) == "Completed", "the takeover", WAIT)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(WAIT) == 0
        shown = subprocess.run(
            [CLOACA, "executions", "show", execution_id[:8], "--db", db_url, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(shown.stdout)["tasks"][0]["attempts"] == 2
    finally:
        first.stop()
        if second is not None:
            second.stop()
