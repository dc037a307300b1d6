"""The package layout: no import circles between cloaca's modules, layers import downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import cloaca

ROOT = Path(cloaca.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported at import time (module level, outside ``if TYPE_CHECKING``)."""
    found: set[str] = set()
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                )
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {name for name in found if name.startswith("cloaca")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: _runtime_imports(path) & modules.keys() - {name} for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_init(name: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(name + ".") for other in graph)


def test_no_import_circles_between_modules() -> None:
    graph = _graph()
    # A package's __init__ importing its own modules is not a circle between modules.
    graph = {
        name: {
            dep for dep in deps if not (_is_package_init(dep, graph) and name.startswith(dep + "."))
        }
        for name, deps in graph.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


# Lower layers never import higher ones.
LAYERS = [
    ("cloaca.errors",),
    ("cloaca.workflows", "cloaca.triggers", "cloaca.cron"),
    ("cloaca.store",),
    ("cloaca.engine",),
    ("cloaca.runner",),
    ("cloaca.cli", "cloaca.testing"),
]


def _layer(name: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_layers_import_downwards() -> None:
    upward = [
        f"{name} imports {dep}"
        for name, deps in _graph().items()
        for dep in deps
        if (mine := _layer(name)) is not None
        and (theirs := _layer(dep)) is not None
        and theirs > mine
    ]
    assert upward == []
