"""Run every benchmark script (``--quick`` for reduced sizes); each prints one JSON line."""

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
        print(f"# {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script), *sys.argv[1:]], cwd=HERE)
        failed += proc.returncode != 0
    print(f"# results in {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
