"""How a ``cloaca run`` worker is configured.

Every :class:`~cloaca.config.DefaultRunnerConfig` field, plus ``database_url``, ``schema``,
``log_level`` and ``log_format``, can be set in four places; the first that sets it wins:

1. a command-line flag (``--concurrency``, ``--set FIELD=VALUE``, ``--db``, ...);
2. an environment variable ``CLOACA_<FIELD>`` (``CLOACA_MAX_CONCURRENT_TASKS=8``);
3. the TOML file of ``--config FILE``: a ``[runner]`` table, or keys at the top level;
4. the app's ``runner_config(config)`` function, then the defaults.

Nothing here knows the field list: it is read from :func:`~cloaca.config.config_fields`,
so a new field works everywhere without code here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloaca.cli.common import DEFAULT_DB, UserError
from cloaca.cli.logs import FORMATS, LEVELS
from cloaca.config import DefaultRunnerConfig, config_fields, parse_field

#: Settings of the worker that are not runner config fields, and what each accepts.
WORKER_SETTINGS = {
    "database_url": "a database URL (sqlite://PATH or postgresql://...)",
    "schema": "a PostgreSQL schema name",
    "log_level": ", ".join(LEVELS),
    "log_format": " or ".join(FORMATS),
}


def env_name(name: str) -> str:
    """The environment variable of a setting: ``CLOACA_<NAME>``."""
    return f"CLOACA_{name.upper()}"


@dataclass
class Layer:
    """The settings one place sets: ``name -> value`` and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: Any, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin


def from_environment(environ: Mapping[str, str]) -> Layer:
    """Every ``CLOACA_<FIELD>`` that is set, parsed by the field's kind; a bad value is a
    ``UserError`` naming the variable, the value and what is accepted."""
    layer = Layer()
    for name in config_fields():
        variable = env_name(name)
        if variable in environ:
            try:
                value = parse_field(name, environ[variable], source=variable)
            except ValueError as exc:
                raise UserError(str(exc)) from exc
            layer.set(name, value, variable)
    for name in WORKER_SETTINGS:
        variable = env_name(name)
        if environ.get(variable):
            layer.set(name, _worker_setting(name, environ[variable], variable), variable)
    return layer


def from_file(path: Path) -> Layer:
    """The settings of a TOML file: its ``[runner]`` table, or its top level when it has
    none. Unknown keys and bad values are a ``UserError`` naming the file and the key."""
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    table = document.get("runner", document)
    if not isinstance(table, dict):
        raise UserError(f"config file {str(path)!r}: [runner] must be a table")
    fields = config_fields()
    layer = Layer()
    for key, value in table.items():
        origin = f"config file {str(path)!r}: {key}"
        if key in WORKER_SETTINGS:
            if not isinstance(value, str):
                raise UserError(f"{origin} = {value!r} is invalid: expected a string")
            layer.set(key, _worker_setting(key, value, origin), origin)
        elif key in fields:
            layer.set(key, value, origin)  # checked when merged (resolve)
        else:
            accepted = ", ".join([*WORKER_SETTINGS, *fields])
            raise UserError(f"{origin}: unknown setting; accepted: {accepted}")
    return layer


def from_assignments(assignments: tuple[str, ...]) -> Layer:
    """``--set FIELD=VALUE`` flags."""
    layer = Layer()
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep:
            raise UserError(f"--set {assignment!r} is invalid: expected FIELD=VALUE")
        if name in WORKER_SETTINGS:
            layer.set(name, _worker_setting(name, text, f"--set {name}"), f"--set {name}")
            continue
        try:
            layer.set(name, parse_field(name, text, source=f"--set {name}"), f"--set {name}")
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    return layer


def _worker_setting(name: str, text: str, origin: str) -> str:
    value = text.strip()
    if name in ("log_level", "log_format"):
        value = value.lower()
        accepted = LEVELS if name == "log_level" else FORMATS
        if value not in accepted:
            raise UserError(f"{origin}={text!r} is invalid: expected {' | '.join(accepted)}")
    return value


@dataclass
class WorkerSettings:
    """What a worker runs with, and where each explicitly set value came from."""

    database_url: str
    schema: str | None
    log_level: str
    log_format: str | None  # None: text on a terminal, JSON otherwise
    config: DefaultRunnerConfig
    origins: dict[str, str]


def resolve(
    layers: list[Layer], base: DefaultRunnerConfig, default_db: str = DEFAULT_DB
) -> WorkerSettings:
    """Merge ``layers`` (first wins) over ``base`` (the app's config, or the defaults).
    The merged config is checked as a whole (``validate``); a failure names its sources."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in reversed(layers):
        values.update(layer.values)
        origins.update(layer.origins)
    config = base.copy()
    for name in config_fields():
        if name in values:
            try:
                setattr(config, name, values[name])
            except ValueError as exc:
                raise UserError(f"{origins[name]}: {exc}") from exc
    try:
        config.validate()
    except ValueError as exc:
        sources = ", ".join(f"{k} from {v}" for k, v in origins.items() if k in config_fields())
        raise UserError(f"{exc}" + (f" (set: {sources})" if sources else "")) from exc
    return WorkerSettings(
        database_url=values.get("database_url", default_db),
        schema=values.get("schema") or None,
        log_level=values.get("log_level", "info"),
        log_format=values.get("log_format"),
        config=config,
        origins=origins,
    )


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ


def settings_epilog() -> str:
    """The ``cloaca run --help`` epilog: every setting, its variable and default."""
    rows = [f"  {env_name(name):<42} {accepted}" for name, accepted in WORKER_SETTINGS.items()]
    rows += [
        f"  {env_name(name):<42} {accepted} (default {_shown(default)})"
        for name, (default, _kind, accepted) in config_fields().items()
    ]
    return (
        "Settings, first wins: flag > environment variable > --config FILE > the app's "
        "runner_config(config) > default. A TOML file takes the same names in lower case "
        "without CLOACA_ (max_concurrent_tasks = 8), in a [runner] table or at its top level; "
        "--set takes them too.\n\n\b\n" + "\n".join(rows)
    )


def settings_table() -> str:
    """Every setting as a Markdown table (docs/operations.md holds this output; a test
    keeps the two equal): ``python -c "from cloaca.cli.settings import settings_table as t;
    print(t())"``."""
    rows = ["| Setting (TOML / `--set`) | Environment variable | Accepts | Default |"]
    rows.append("| --- | --- | --- | --- |")
    defaults = {"database_url": DEFAULT_DB, "schema": "-", "log_level": "info"}
    defaults["log_format"] = "text on a terminal, else json"
    for name, accepted in WORKER_SETTINGS.items():
        rows.append(f"| `{name}` | `{env_name(name)}` | {accepted} | {defaults[name]} |")
    for name, (default, _kind, accepted) in config_fields().items():
        rows.append(f"| `{name}` | `{env_name(name)}` | {accepted} | {_shown(default)} |")
    return "\n".join(rows)


def _shown(default: Any) -> str:
    """A default as it is written in a file or a variable (``true``, not ``True``)."""
    return str(default).lower() if isinstance(default, bool) else str(default)
