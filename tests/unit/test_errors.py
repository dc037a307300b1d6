"""One root for every exception cloaca raises, and the builtin types the SPEC promises."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import cloaca
from cloaca import errors
from cloaca.errors import CloacaError


def _modules() -> list[ModuleType]:
    found = [cloaca]
    for info in pkgutil.walk_packages(cloaca.__path__, "cloaca."):
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:  # an optional extra that is not installed
            continue
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    out: dict[str, type[BaseException]] = {}
    for module in _modules():
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("cloaca"):
                out[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return out


def test_every_exception_class_in_cloaca_derives_from_cloaca_error() -> None:
    classes = _exception_classes()
    assert "cloaca.errors.ValidationError" in classes  # the walk found the package
    assert "cloaca.context._NotJson" in classes  # and private classes too
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, CloacaError))
    assert outside == []


def test_every_exception_is_defined_once() -> None:
    """Moved classes are re-imported where they lived, not redefined."""
    public = {n: c for n, c in _exception_classes().items() if n.rpartition(".")[2][0] != "_"}
    by_name: dict[str, set[str]] = {}
    for name, cls in public.items():
        by_name.setdefault(cls.__qualname__, set()).add(name)
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ValidationError, ValueError),
        (errors.ContextLimitError, ValueError),
        (errors.ParamsError, ValueError),
        (errors.NotACloacaDatabase, ValueError),
        (errors.SchemaTooNew, ValueError),
        (errors.WrongTypeError, TypeError),
        (errors.BadTaskResult, TypeError),
        (errors.MissingKeyError, KeyError),
        (errors.RunnerShutDown, RuntimeError),
    ],
)
def test_spec_builtin_types_still_catch(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, CloacaError)
    assert issubclass(cls, builtin)


def test_moved_names_still_import_from_their_old_homes() -> None:
    from cloaca.context import ContextLimitError
    from cloaca.engine.attempts import BadTaskResult, TaskTimedOut
    from cloaca.store.db import NotACloacaDatabase, SchemaTooNew, StoreError, TransientStoreError
    from cloaca.triggers.results import TriggerError

    assert ContextLimitError is errors.ContextLimitError
    assert (BadTaskResult, TaskTimedOut) == (errors.BadTaskResult, errors.TaskTimedOut)
    assert (StoreError, TransientStoreError) == (errors.StoreError, errors.TransientStoreError)
    assert (NotACloacaDatabase, SchemaTooNew) == (errors.NotACloacaDatabase, errors.SchemaTooNew)
    assert TriggerError is errors.TriggerError is cloaca.TriggerError
    assert cloaca.CloacaError is CloacaError


def test_errors_module_imports_nothing_from_cloaca() -> None:
    tree = ast.parse(inspect.getsource(errors))
    imported = [
        getattr(node, "module", None) or node.names[0].name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert [name for name in imported if name.startswith("cloaca")] == []


def test_user_errors_raised_by_the_api_are_cloaca_errors_of_the_promised_type() -> None:
    ctx = cloaca.Context({"a": 1})
    with pytest.raises(CloacaError) as raised:
        ctx.insert("a", 2)
    assert isinstance(raised.value, ValueError)
    assert "Key already exists" in str(raised.value)
    with pytest.raises(CloacaError) as missing:
        ctx["nope"]
    assert isinstance(missing.value, KeyError)
    with pytest.raises(CloacaError) as bad_value:
        ctx.set("b", object())
    assert isinstance(bad_value.value, TypeError)
    with pytest.raises(CloacaError) as bad_json:
        cloaca.Context.from_json("{")
    assert isinstance(bad_json.value, ValueError)
    with pytest.raises(CloacaError) as empty:
        cloaca.WorkflowBuilder("empty_errors_wf").build()
    assert isinstance(empty.value, ValueError)
    with pytest.raises(CloacaError) as backoff:
        cloaca.task(retry_backoff="sideways")
    assert isinstance(backoff.value, ValueError)
    with pytest.raises(CloacaError) as bad_config:
        cloaca.DefaultRunnerConfig(max_concurrent_tasks=0)
    assert isinstance(bad_config.value, ValueError)


# Builtin exceptions raised on purpose and caught within the same function: never seen by
# a caller. (module, line text)
_INTERNAL_BUILTIN_RAISES = {
    ("cloaca.config", "raise ValueError(cleaned)"),
    ("cloaca.runner.cron", "raise TypeError"),
    ("cloaca.engine.attempts", 'raise RuntimeError("cancelled: the execution ended while it ran")'),
}


def test_no_module_raises_a_bare_builtin_exception_at_its_callers() -> None:
    """Every raise of ValueError, TypeError, KeyError or RuntimeError in cloaca is one of
    the CloacaError subclasses (which keep the builtin type), so ``except CloacaError``
    catches whatever cloaca raises."""
    builtins = {"ValueError", "TypeError", "KeyError", "RuntimeError"}
    found: set[tuple[str, str]] = set()
    for module in _modules():
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in builtins:
                line = ast.get_source_segment(source, node) or ""
                found.add((module.__name__, line.split(" from ")[0].strip()))
    assert found <= _INTERNAL_BUILTIN_RAISES, sorted(found - _INTERNAL_BUILTIN_RAISES)
