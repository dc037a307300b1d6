"""Declared inputs (``@workflow_params``), secrets (``@workflow_secrets``) and variables.

Upstream ``cloaca`` only records declared inputs; here they are enforced: every entry that
creates an execution (``start``/``execute``, trigger fires, cron fires, the CLI) passes the
input context through :func:`bind_params`, which fills defaults and raises one
:class:`~cloaca.errors.ParamsError` listing every problem. Declarations travel as plain JSON
(:func:`param_specs`) inside the workflow definition the runner records, so a process that
only knows the recorded definition enforces them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from cloaca.context import Context
from cloaca.errors import MissingKeyError, ParamsError, ValidationError, WrongTypeError

__all__ = [
    "PARAMS_ATTR",
    "SECRETS_ATTR",
    "bind_params",
    "boundary_schema",
    "merge_declarations",
    "var",
    "var_or",
    "workflow_params",
    "workflow_secrets",
]

PARAMS_ATTR = "__cloaca_params__"
SECRETS_ATTR = "__cloaca_secrets__"

#: Accepted declared types, by the name recorded in the definition.
_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}
_ACCEPTED = "str, int, float, bool, list, dict"

F = TypeVar("F", bound=Callable[..., Any])


def _type_name(name: str, declared: object) -> str:
    for type_name, cls in _TYPES.items():
        if declared is cls:
            return type_name
    raise ValidationError(
        f"workflow param {name!r}: type {declared!r} is not accepted; accepted: {_ACCEPTED}"
    )


def _matches(type_name: str, value: Any) -> bool:
    if type_name == "float":  # a JSON number: 3 is a valid float input
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[type_name])


def _spec(name: str, declared: object) -> dict[str, Any]:
    """The JSON form of one declaration: ``{"type": "int"}`` (required) or
    ``{"type": "int", "default": 3}``."""
    if isinstance(declared, tuple):
        if len(declared) != 2:
            raise ValidationError(
                f"workflow param {name!r}: expected a type or (type, default), got {declared!r}"
            )
        type_name, default = _type_name(name, declared[0]), declared[1]
        if default is not None and not _matches(type_name, default):
            raise ValidationError(
                f"workflow param {name!r}: default {default!r} is not a {type_name}"
            )
        return {"type": type_name, "default": default}
    return {"type": _type_name(name, declared)}


def workflow_params(**declared: object) -> Callable[[F], F]:
    """Declare the typed inputs of the workflow whose entry task this decorates (compat).

    ``@workflow_params(source=str, limit=(int, 100))``: ``source`` is required, ``limit``
    defaults to 100. Accepted types: ``str int float bool list dict``. Works above or below
    ``@cloaca.task``; returns the function unchanged.
    """
    specs = {name: _spec(name, value) for name, value in declared.items()}

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise WrongTypeError(f"@workflow_params decorates a task function, got {fn!r}")
        setattr(fn, PARAMS_ATTR, {**getattr(fn, PARAMS_ATTR, {}), **specs})
        return fn

    return decorate


def workflow_secrets(*names: str) -> Callable[[F], F]:
    """Declare the secret names a workflow reads (with :func:`var`) (compat).

    A declared secret may never be passed in an input context: its value would be stored.
    """
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError(f"workflow secret names must be non-empty strings, got {name!r}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise WrongTypeError(f"@workflow_secrets decorates a task function, got {fn!r}")
        setattr(fn, SECRETS_ATTR, (*getattr(fn, SECRETS_ATTR, ()), *names))
        return fn

    return decorate


def boundary_schema(*args: Any, **kwargs: Any) -> Any:
    """Accepted for compatibility and does nothing: returns its (first) argument, so it works
    as ``@boundary_schema`` on a class or as ``boundary_schema(schema)``."""
    if args:
        return args[0]

    def decorate(obj: Any) -> Any:
        return obj

    return decorate


def merge_declarations(
    workflow_name: str, declared: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """One workflow's params from its tasks' ``(task id, specs)``; two tasks declaring the
    same name differently is an error."""
    merged: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for task_id, specs in declared:
        for name, spec in specs.items():
            if name in merged and merged[name] != spec:
                raise ValidationError(
                    f"workflow {workflow_name!r}: param {name!r} is declared as {merged[name]} "
                    f"by task {owner[name]!r} and as {spec} by task {task_id!r}"
                )
            merged[name] = dict(spec)
            owner.setdefault(name, task_id)
    return merged


def bind_params(
    workflow_name: str,
    params: Mapping[str, Mapping[str, Any]],
    secrets: Collection[str],
    data: Mapping[str, Any] | None,
) -> Mapping[str, Any] | None:
    """``data`` (a Context, a dict or None) with defaults filled in, checked against the
    declared ``params``; ``data`` itself when nothing is declared (no copy on that path).

    Raises one :class:`ParamsError` naming every missing required input, every value of the
    wrong type and every declared secret passed in the context. Undeclared keys pass.
    """
    if data is not None and not isinstance(data, Mapping):
        raise WrongTypeError(
            f"context must be a Context, a dict or None, got {type(data).__name__}"
        )
    if not params and not secrets:
        return data
    # A shallow view: the caller encodes or copies the result, so values may be shared.
    out = dict((data._raw() if isinstance(data, Context) else data) or {})
    problems: list[str] = []
    for name, spec in params.items():
        type_name = spec["type"]
        if name not in out:
            if "default" in spec:
                out[name] = spec["default"]
            else:
                problems.append(f"missing required input {name!r} ({type_name})")
            continue
        value = out[name]
        if value is None and "default" in spec and spec["default"] is None:
            continue
        if not _matches(type_name, value):
            problems.append(
                f"input {name!r} must be {_article(type_name)} {type_name}, "
                f"got {type(value).__name__} {value!r:.60}"
            )
    for name in secrets:
        if name in out:
            problems.append(
                f"secret {name!r} must not be passed in the context (it would be stored); "
                f"set CLOACINA_VAR_{name} and read it with cloaca.var({name!r})"
            )
    if problems:
        raise ParamsError(workflow_name, problems)
    return out


def var(name: str) -> str:
    """The value of the environment variable ``CLOACINA_VAR_{name}`` (compat); ``KeyError``
    naming the variable when it is not set."""
    key = f"CLOACINA_VAR_{name}"
    try:
        return os.environ[key]
    except KeyError:
        raise MissingKeyError(
            f"variable {name!r} is not set: set the environment variable {key}"
        ) from None


def var_or(name: str, default: str) -> str:
    """The value of ``CLOACINA_VAR_{name}``, or ``default`` when it is not set (compat)."""
    return os.environ.get(f"CLOACINA_VAR_{name}", default)


def _article(type_name: str) -> str:
    return "an" if type_name[0] in "aeiou" else "a"
