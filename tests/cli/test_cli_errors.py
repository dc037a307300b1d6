"""Errors a user cannot wait out are one line at once; app import errors name file and line;
``--version``, ``python -m cloaca`` and ``--db`` after any command (#11)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from cli_support import cloaca, write_app

from cloaca.cli.main import main


def _one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    return lines[0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres@127.0.0.1:5432/no_such_database", 'database "no_such_database"'),
        ("postgresql://no_such_role@127.0.0.1:5432/test", 'role "no_such_role" does not exist'),
        ("postgresql://postgres@no-such-host.invalid:5432/test", "no-such-host.invalid"),
    ],
)
@pytest.mark.parametrize("command", ["run", "list"])
def test_permanent_postgres_errors_are_one_line_at_once(
    url: str, reason: str, command: str, tmp_path: Path
) -> None:
    # PostgreSQL only: these are the server's answers (SQLite's missing file is below).
    from pg_support import require_postgres

    require_postgres()
    args = (
        ["run", write_app(tmp_path), "--for", "0"] if command == "run" else ["executions", "list"]
    )
    began = time.monotonic()
    result = cloaca("--db", url, *args)
    assert time.monotonic() - began < 5  # no 10 s of retries
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert "cannot connect to PostgreSQL at" in line and reason in line


def test_a_password_in_a_failing_url_is_masked(tmp_path: Path) -> None:
    from pg_support import require_postgres

    require_postgres()
    result = cloaca("--db", "postgresql://who:s3cret@127.0.0.1:5432/no_such_db", "db", "status")
    line = _one_error_line(result.output)
    assert "who:***@" in line and "s3cret" not in line


def test_a_sqlite_file_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'no' / 'such' / 'dir.db'}"
    result = cloaca("--db", url, "run", write_app(tmp_path), "--for", "0")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import cloaca\n\nx = 1\nprint(undefined_name)\n", "bad_app.py:4: NameError: "),
        ("def broken(:\n    pass\n", "bad_app.py:1: SyntaxError: "),
        ("import no_such_module_anywhere\n", "bad_app.py:1: ModuleNotFoundError: "),
        ("def f():\n    raise ValueError('bad\\nvalue')\n\nf()\n", "bad_app.py:2: ValueError: bad"),
    ],
)
def test_app_import_errors_name_file_and_line(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLOACA_DEBUG", raising=False)
    (tmp_path / "bad_app.py").write_text(source)
    result = cloaca("--db", db_url, "run", "bad_app.py", "--for", "0")
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert f"Error: importing app 'bad_app.py' failed: {expected}" in line
    sys.modules.pop("bad_app", None)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_traceback_flag_or_cloaca_debug_prints_the_whole_traceback(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad_app.py").write_text("import cloaca\n\nprint(undefined_name)\n")
    if how == "flag":
        result = cloaca("--db", db_url, "--traceback", "run", "bad_app.py", "--for", "0")
    else:
        result = cloaca(
            "--db", db_url, "run", "bad_app.py", "--for", "0", env={"CLOACA_DEBUG": "1"}
        )
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'bad_app.py", line 3' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: importing app")
    sys.modules.pop("bad_app", None)


def test_version() -> None:
    result = cloaca("--version")
    assert result.exit_code == 0
    assert result.output.startswith("cloaca, version ")


def test_python_dash_m_cloaca_runs_the_command(db_url: str, tmp_path: Path) -> None:
    app = write_app(tmp_path)
    run = [sys.executable, "-m", "cloaca"]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # piped: never truncated
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("cloaca, version ")
    executed = subprocess.run(
        [*run, "execute", "hello", "--app", app, "--db", db_url], capture_output=True, text=True
    )
    assert executed.returncode == 0, executed.stderr
    listed = subprocess.run(
        [*run, "executions", "list", "--db", db_url],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert "hello" in listed.stdout and "Completed" in listed.stdout


def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _leaf_commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("path", _leaf_commands(main), ids=" ".join)
def test_every_command_accepts_db_after_its_name(path: tuple[str, ...]) -> None:
    result = cloaca(*path, "--help")
    assert result.exit_code == 0
    assert "--db" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("executions", "list"),
        ("executions", "show", "abc12345"),
        ("executions", "cancel", "abc12345"),
        ("triggers", "list"),
        ("cron", "history", "abc12345"),
        ("workflows", "list"),
        ("db", "status"),
        ("execute", "hello", "--no-wait"),
    ],
)
def test_db_after_the_command_is_the_database_used(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "elsewhere.db"
    result = cloaca(
        "--db", f"sqlite://{tmp_path / 'ignored.db'}", *args, "--db", f"sqlite://{missing}"
    )
    assert result.exit_code == 1
    assert _one_error_line(result.output).startswith(
        f"Error: cloaca database not found at sqlite://{missing}"
    )


def test_db_after_the_command_works(db_url: str, tmp_path: Path) -> None:
    assert cloaca("execute", "hello", "--app", write_app(tmp_path), "--db", db_url).exit_code == 0
    listed = cloaca("executions", "list", "--json", "--db", db_url)
    assert listed.exit_code == 0 and '"hello"' in listed.output
