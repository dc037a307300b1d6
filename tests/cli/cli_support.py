"""Helpers of the CLI tests: an app file, a CliRunner on ``cloaca``, the ``cloaca`` binary."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from cloaca.cli.main import main

#: The ``cloaca`` command of this virtualenv (for tests that need a real process).
CLOACA = str(Path(sys.executable).parent / "cloaca")

APP = textwrap.dedent(
    """
    import cloaca

    @cloaca.task(id="greet")
    def greet(context):
        context.set("greeting", "hello " + context.get("name", "world"))

    @cloaca.task(id="boom", retry_attempts=1)
    def boom(context):
        raise RuntimeError("kaboom")

    cloaca.workflow("hello", [greet])
    cloaca.workflow("broken", [boom])
    """
)


def write_app(folder: Path, name: str = "op_app", extra: str = "") -> str:
    """Write the test app (plus ``extra`` code) as ``folder/name.py``; returns its path."""
    path = folder / f"{name}.py"
    path.write_text(APP + textwrap.dedent(extra))
    return str(path)


def cloaca(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``cloaca ARGS`` as a user types it (stdout and stderr kept apart)."""
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
