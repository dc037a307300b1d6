"""``cloaca run`` configured by flags, ``CLOACA_*`` variables, a TOML file and the app, and
its logs (SPEC 9, 10; issue #11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import cloaca, write_app

from cloaca.cli.settings import env_name
from cloaca.config import config_fields

#: An app whose configure(runner) writes the config the runner runs with to $DUMP.
DUMPING = """
    import json, os

    def configure(runner):
        with open(os.environ["DUMP"], "w") as f:
            json.dump(runner.config.to_dict(), f)
    """


def _dumped(tmp_path: Path) -> dict[str, object]:
    return json.loads((tmp_path / "config.json").read_text())


def test_run_help_lists_every_setting_its_variable_and_the_flags() -> None:
    result = cloaca("run", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in [*config_fields(), "database_url", "schema", "log_level", "log_format"]:
        assert env_name(name) in text, name
    for flag in ("--concurrency", "--log-level", "--log-format", "--schema", "--config", "--set"):
        assert flag in text
    assert "flag > environment variable > --config FILE" in text


def test_precedence_is_flag_then_environment_then_file_then_default(
    db_url: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path, extra=DUMPING)
    config = tmp_path / "cloaca.toml"
    config.write_text(
        "[runner]\n"
        "max_concurrent_tasks = 3\n"
        "db_pool_size = 6\n"
        "trigger_poll_timeout = 12.5\n"
        "enable_cron_scheduling = false\n"
    )
    env = {
        "DUMP": str(tmp_path / "config.json"),
        "CLOACA_MAX_CONCURRENT_TASKS": "5",
        "CLOACA_DB_POOL_SIZE": "7",
        "CLOACA_ENABLE_TRIGGER_SCHEDULING": "off",
    }
    result = cloaca(
        "run", app, "--db", db_url, "--config", str(config), "--concurrency", "9", "--for", "0",
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "with 9 task slots" in result.stdout
    got = _dumped(tmp_path)
    assert got["max_concurrent_tasks"] == 9  # flag over environment over file
    assert got["db_pool_size"] == 7  # environment over file
    assert got["trigger_poll_timeout"] == 12.5  # file over default
    assert got["enable_cron_scheduling"] is False  # file
    assert got["enable_trigger_scheduling"] is False  # environment
    assert got["heartbeat_interval_seconds"] == 10  # default

    # Without the flag the environment wins; without the environment, the file.
    assert cloaca("run", app, "--db", db_url, "--config", str(config), "--for", "0", env=env)
    assert _dumped(tmp_path)["max_concurrent_tasks"] == 5
    only_file = {"DUMP": env["DUMP"]}
    assert cloaca(
        "run", app, "--db", db_url, "--config", str(config), "--for", "0", env=only_file
    ).exit_code == 0  # fmt: skip
    assert _dumped(tmp_path)["max_concurrent_tasks"] == 3


def test_set_flag_and_top_level_toml_keys(db_url: str, tmp_path: Path) -> None:
    app = write_app(tmp_path, extra=DUMPING)
    config = tmp_path / "flat.toml"
    config.write_text(f'database_url = "{db_url}"\nstale_claim_threshold_seconds = 90\n')
    result = cloaca(
        "run", app, "--config", str(config), "--set", "heartbeat_interval_seconds=2.5",
        "--set", "enable_recovery=false", "--for", "0",
        env={"DUMP": str(tmp_path / "config.json")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = _dumped(tmp_path)
    assert (got["heartbeat_interval_seconds"], got["enable_recovery"]) == (2.5, False)
    assert got["stale_claim_threshold_seconds"] == 90
    # The file's database_url was used: the worker recorded the app's workflows there.
    listed = cloaca("--db", db_url, "workflows", "list", "--json")
    assert [w["name"] for w in json.loads(listed.output)] == ["broken", "hello"]


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("CLOACA_MAX_CONCURRENT_TASKS", "zero", "expected an integer >= 1"),
        ("CLOACA_MAX_CONCURRENT_TASKS", "0", "expected an integer >= 1"),
        ("CLOACA_ENABLE_RECOVERY", "maybe", "expected true or false (also 1/0, yes/no, on/off)"),
        ("CLOACA_TRIGGER_POLL_TIMEOUT", "soon", "expected seconds, a number >= 0.001"),
        ("CLOACA_LOG_LEVEL", "loud", "expected debug | info | warning | error"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_it_and_creates_nothing(
    db_url: str, tmp_path: Path, variable: str, value: str, accepted: str
) -> None:
    app = write_app(tmp_path)
    result = cloaca("run", app, "--db", db_url, "--for", "0", env={variable: value})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {variable}={value!r} is invalid: {accepted}"
    ]
    # Nothing was started: the database is still not a cloaca database.
    assert "cloaca database not found" in cloaca("--db", db_url, "db", "status").output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[runner]\nmax_workers = 3\n", "max_workers: unknown setting; accepted: database_url"),
        ("[runner]\nmax_concurrent_tasks = 0\n", "max_concurrent_tasks=0 is invalid"),
        ("[runner]\nenable_recovery = 'yes'\n", "enable_recovery='yes' is invalid"),
        ("[runner\n", "is not valid TOML"),
        ("log_format = 'xml'\n", "log_format='xml' is invalid: expected text | json"),
        (
            "heartbeat_interval_seconds = 30\nstale_claim_threshold_seconds = 20\n",
            "must be greater than heartbeat_interval_seconds",
        ),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(
    db_url: str, tmp_path: Path, text: str, message: str
) -> None:
    app = write_app(tmp_path)
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = cloaca("run", app, "--db", db_url, "--config", str(config), "--for", "0")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output
    assert "bad.toml" in result.output or "stale_claim" in result.output


def test_the_apps_runner_config_sets_defaults_the_operator_overrides(
    db_url: str, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path,
        extra=DUMPING
        + """
    def runner_config(config):
        config.max_concurrent_tasks = 2
        config.task_timeout_seconds = 42
    """,
    )
    env = {"DUMP": str(tmp_path / "config.json")}
    result = cloaca("run", app, "--db", db_url, "--for", "0", env=env)
    assert result.exit_code == 0, result.output
    assert "with 2 task slots" in result.stdout
    assert _dumped(tmp_path)["task_timeout_seconds"] == 42
    assert cloaca("run", app, "--db", db_url, "--concurrency", "6", "--for", "0", env=env)
    got = _dumped(tmp_path)
    assert (got["max_concurrent_tasks"], got["task_timeout_seconds"]) == (6, 42)


def test_configure_changing_runner_config_is_refused_saying_where_to_set_it(
    db_url: str, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path,
        extra="""
    def configure(runner):
        runner.config.max_concurrent_tasks = 16
    """,
    )
    result = cloaca("run", app, "--db", db_url, "--for", "0")
    assert result.exit_code == 1
    assert "changed runner.config (max_concurrent_tasks 4 -> 16)" in result.output
    assert "def runner_config(config):" in result.output
    # One line of error (the lines before it are the worker's logs: migrations applied).
    assert result.stderr.strip().splitlines()[-1].startswith("Error: configure(runner) in ")
    assert result.output.count("Error:") == 1
    # The runner it started was shut down: no runner row is left behind.
    assert json.loads(cloaca("--db", db_url, "executions", "list", "--json").output) == []
    from pg_support import run_sql

    assert run_sql(db_url, "SELECT COUNT(*) FROM cloaca_runners") == [(0,)]


LOGGING = """
    import logging

    log = logging.getLogger("op_app")
    log.info("app imported", extra={"execution_id": "e-1", "task_id": "greet"})
    log.debug("not shown at info")
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("it failed")
    log.warning("connecting to postgresql://alice:s3cret@db.example/prod")
    """


def test_json_logs_are_one_object_per_line_with_extras_and_traceback(
    db_url: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path, extra=LOGGING)
    result = cloaca("run", app, "--db", db_url, "--log-format", "json", "--for", "0")
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    mine = [e for e in entries if e["logger"] == "op_app"]
    assert [e["message"] for e in mine] == [
        "app imported",
        "it failed",
        "connecting to postgresql://alice:***@db.example/prod",
    ]
    first = mine[0]
    assert {"time", "level", "logger", "message"} <= first.keys()
    assert (first["level"], first["execution_id"], first["task_id"]) == ("INFO", "e-1", "greet")
    assert "KeyError: 'missing'" in mine[1]["traceback"]
    assert "s3cret" not in result.output


def test_text_logs_and_log_level_from_the_environment(db_url: str, tmp_path: Path) -> None:
    app = write_app(tmp_path, extra=LOGGING)
    result = cloaca(
        "run", app, "--db", db_url, "--log-format", "text", "--for", "0",
        env={"CLOACA_LOG_LEVEL": "DEBUG"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "DEBUG op_app: not shown at info" in result.stderr
    assert "INFO op_app: app imported (execution_id=e-1, task_id=greet)" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "alice:***@db.example" in result.stderr and "s3cret" not in result.output
    quiet = cloaca("run", app, "--db", db_url, "--log-level", "warning", "--for", "0")
    assert "app imported" not in quiet.stderr and "alice:***@" in quiet.stderr


def test_the_banner_masks_the_password(tmp_path: Path) -> None:
    # PostgreSQL only: a SQLite URL has no password. The test server trusts every password.
    from pg_support import fresh_database

    app = write_app(tmp_path)
    with fresh_database() as url:
        secret_url = url.replace("postgres@", "postgres:s3cret@", 1)
        result = cloaca("run", app, "--db", secret_url, "--log-format", "json", "--for", "0")
    assert result.exit_code == 0, result.output
    assert "running on postgresql://postgres:***@127.0.0.1" in result.stdout
    assert "s3cret" not in result.output


def test_schema_flag_keeps_the_tables_in_that_schema(pg_schema: tuple[str, str], tmp_path):
    # PostgreSQL only: schemas are a PostgreSQL feature (SQLite is refused, below).
    from pg_support import run_sql

    url, schema = pg_schema
    app = write_app(tmp_path)
    result = cloaca("run", app, "--db", url, "--schema", schema, "--for", "0")
    assert result.exit_code == 0, result.output
    assert f"(schema {schema})" in result.stdout
    tables = run_sql(
        url,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :s",
        {"s": schema},
    )
    assert tables[0][0] > 0
    listed = cloaca("workflows", "list", "--db", url, "--schema", schema, "--json")
    assert [w["name"] for w in json.loads(listed.output)] == ["broken", "hello"]
    via_env = cloaca("--db", url, "workflows", "list", "--json", env={"CLOACA_SCHEMA": schema})
    assert len(json.loads(via_env.output)) == 2


def test_schema_on_sqlite_is_one_line_exit_1(sqlite_url: str, tmp_path: Path) -> None:
    result = cloaca("run", write_app(tmp_path), "--db", sqlite_url, "--schema", "x", "--for", "0")
    assert result.exit_code == 1
    assert "requires PostgreSQL" in result.output
    assert len(result.output.strip().splitlines()) == 1
