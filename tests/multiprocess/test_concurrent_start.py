"""Several processes opening the same NEW SQLite file at the same instant all start."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

WORKER = """
import sys, time
import cloaca
path, start_at = sys.argv[1], float(sys.argv[2])

@cloaca.task(id="hello")
def hello(context):
    context.set("pid", 1)

cloaca.workflow("hello", [hello])
while time.time() < start_at:
    pass
with cloaca.DefaultRunner(f"sqlite://{path}") as runner:
    print(runner.execute("hello").status)
"""


def test_processes_racing_to_create_one_database_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    start_at = time.time() + 1.5  # every process is imported and spinning by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [p.communicate(timeout=45) for p in procs]
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "Completed"
