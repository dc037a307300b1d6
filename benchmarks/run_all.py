"""Run every benchmark script on SQLite, and on PostgreSQL where the script supports it
(``--quick`` for reduced sizes); each prints one JSON line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    results = HERE / "results" / "latest.jsonl"
    if results.exists():
        results.unlink()
    failed = 0
    for script in sorted(HERE.glob("w*_*.py")):
        # Scripts that open their database through _common also run on PostgreSQL.
        text = script.read_text()
        both = "open_runner(" in text or "database_url(" in text
        backends = [[], ["--postgres"]] if both else [[]]
        for extra in backends:
            print(f"# {script.name} {' '.join(extra)}", flush=True)
            argv = [sys.executable, str(script), *sys.argv[1:], *extra]
            failed += subprocess.run(argv, cwd=HERE).returncode != 0
    print(f"# results in {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
