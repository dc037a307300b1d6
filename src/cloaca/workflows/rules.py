"""Trigger rules: when a task with dependencies runs, or is Skipped instead.

Rules are plain dicts shaped like the upstream serde form, e.g.
``{"type": "All", "conditions": [{"type": "TaskSuccess", "task_name": "a"}]}``.
Rule types are ``Always``, ``All``, ``Any`` and ``None``; condition types are
``TaskSuccess``, ``TaskFailed``, ``TaskSkipped`` and ``ContextValue``. As an extension, a
rule may appear where a condition is expected (nesting), and a bare string means
``task_success(name)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cloaca.errors import ValidationError

__all__ = [
    "OPERATORS",
    "all_of",
    "always",
    "any_of",
    "context_value",
    "evaluate_rule",
    "none_of",
    "normalize_rule",
    "referenced_tasks",
    "task_failed",
    "task_skipped",
    "task_success",
]

#: Canonical operator names, in documentation order.
OPERATORS: tuple[str, ...] = (
    "Equals",
    "NotEquals",
    "GreaterThan",
    "LessThan",
    "Contains",
    "NotContains",
    "Exists",
    "NotExists",
)

_ALIASES: dict[str, str] = {
    "equals": "Equals",
    "==": "Equals",
    "eq": "Equals",
    "not_equals": "NotEquals",
    "!=": "NotEquals",
    "ne": "NotEquals",
    "greater_than": "GreaterThan",
    ">": "GreaterThan",
    "gt": "GreaterThan",
    "less_than": "LessThan",
    "<": "LessThan",
    "lt": "LessThan",
    "contains": "Contains",
    "not_contains": "NotContains",
    "exists": "Exists",
    "not_exists": "NotExists",
    # The canonical CamelCase names, lowercased for the case-insensitive lookup.
    **{name.lower(): name for name in OPERATORS},
}

_RULE_TYPES = ("Always", "All", "Any", "None")
_TASK_CONDITIONS = ("TaskSuccess", "TaskFailed", "TaskSkipped")
_CONDITION_TYPES = (*_TASK_CONDITIONS, "ContextValue")
_TASK_STATUS = {"TaskSuccess": "Completed", "TaskFailed": "Failed", "TaskSkipped": "Skipped"}
# Operators that hold when the context key is missing.
_TRUE_WHEN_MISSING = frozenset({"NotEquals", "NotContains", "NotExists"})


def _canonical_operator(operator: Any) -> str:
    """Map an operator name or alias (case-insensitive) to its canonical name."""
    if isinstance(operator, str):
        found = _ALIASES.get(operator.strip().lower())
        if found is not None:
            return found
    accepted = ", ".join(
        [
            "equals",
            "not_equals",
            "greater_than",
            "less_than",
            "contains",
            "not_contains",
            "exists",
            "not_exists",
            "==",
            "!=",
            ">",
            "<",
            "eq",
            "ne",
            "gt",
            "lt",
        ]
    )
    raise ValidationError(f"Unknown context_value operator {operator!r}; accepted: {accepted}")


def _check_task_name(task_name: Any, what: str) -> str:
    """Return `task_name` if it is a non-empty str, else raise ValueError."""
    if not isinstance(task_name, str) or not task_name:
        raise ValidationError(f"{what} needs a non-empty task name string, got {task_name!r}")
    return task_name


def always() -> dict[str, Any]:
    """Rule that always holds: the task runs regardless of its dependencies' outcome."""
    return {"type": "Always"}


def task_success(task_name: str) -> dict[str, Any]:
    """Condition: the named task Completed."""
    return {"type": "TaskSuccess", "task_name": _check_task_name(task_name, "task_success")}


def task_failed(task_name: str) -> dict[str, Any]:
    """Condition: the named task Failed."""
    return {"type": "TaskFailed", "task_name": _check_task_name(task_name, "task_failed")}


def task_skipped(task_name: str) -> dict[str, Any]:
    """Condition: the named task was Skipped."""
    return {"type": "TaskSkipped", "task_name": _check_task_name(task_name, "task_skipped")}


def context_value(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    """Condition on the task's input context: ``context[key] <operator> value``.

    Operators: equals, not_equals, greater_than, less_than, contains, not_contains,
    exists, not_exists, the aliases == != > < eq ne gt lt, and the CamelCase names;
    case-insensitive. `value` must be JSON-serialisable (ignored by exists/not_exists).
    """
    if not isinstance(key, str) or not key:
        raise ValidationError(f"context_value needs a non-empty key string, got {key!r}")
    op = _canonical_operator(operator)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError(
            f"context_value value for key {key!r} must be JSON-serialisable, "
            f"got {type(value).__name__}"
        ) from None
    return {"type": "ContextValue", "key": key, "operator": op, "value": value}


def _combine(kind: str, conditions: Iterable[Any]) -> dict[str, Any]:
    """Build an All/Any/None rule from conditions, nested rules or bare task names."""
    return {
        "type": kind,
        "conditions": [_normalize_node(c, f"{kind} condition") for c in conditions],
    }


def all_of(*conditions: Any) -> dict[str, Any]:
    """Rule: every condition holds (true when there are none)."""
    return _combine("All", conditions)


def any_of(*conditions: Any) -> dict[str, Any]:
    """Rule: at least one condition holds (false when there are none)."""
    return _combine("Any", conditions)


def none_of(*conditions: Any) -> dict[str, Any]:
    """Rule: no condition holds."""
    return _combine("None", conditions)


def _check_keys(node: Mapping[str, Any], allowed: set[str], kind: str) -> None:
    """Reject keys a node of type `kind` does not have (typos must not pass silently)."""
    extra = set(node) - allowed
    if extra:
        raise ValidationError(
            f"Unexpected key(s) {sorted(extra)} in {kind} trigger rule; accepted: {sorted(allowed)}"
        )


def _normalize_node(node: Any, where: str) -> dict[str, Any]:
    """Validate one rule or condition and return a fresh canonical dict."""
    if isinstance(node, str):
        return task_success(node)
    if not isinstance(node, Mapping):
        raise ValidationError(
            f"Invalid {where} {node!r}: expected a rule/condition dict or a task name string"
        )
    if "type" not in node:
        raise ValidationError(
            f"Invalid {where} {dict(node)!r}: missing 'type'; accepted types: "
            f"{', '.join((*_RULE_TYPES, *_CONDITION_TYPES))}"
        )
    kind = node["type"]
    if kind == "Always":
        _check_keys(node, {"type"}, kind)
        return always()
    if kind in ("All", "Any", "None"):
        _check_keys(node, {"type", "conditions"}, kind)
        conditions = node.get("conditions")
        if not isinstance(conditions, list | tuple):
            raise ValidationError(
                f"{kind} trigger rule needs a 'conditions' list, got {conditions!r}"
            )
        return _combine(kind, conditions)
    if kind in _TASK_CONDITIONS:
        _check_keys(node, {"type", "task_name"}, kind)
        if "task_name" not in node:
            raise ValidationError(f"{kind} condition is missing 'task_name': {dict(node)!r}")
        return {"type": kind, "task_name": _check_task_name(node["task_name"], kind)}
    if kind == "ContextValue":
        _check_keys(node, {"type", "key", "operator", "value"}, kind)
        for required in ("key", "operator"):
            if required not in node:
                raise ValidationError(
                    f"ContextValue condition is missing {required!r}: {dict(node)!r}"
                )
        return context_value(node["key"], node["operator"], node.get("value"))
    accepted = ", ".join((*_RULE_TYPES, *_CONDITION_TYPES))
    raise ValidationError(f"Unknown trigger rule type {kind!r} in {where}; accepted: {accepted}")


def normalize_rule(rule: Any) -> dict[str, Any] | None:
    """Validate a user-supplied trigger rule and return it in canonical form.

    None stays None (the default rule applies). A bare condition dict becomes
    ``All([condition])``; a bare string becomes ``All([task_success(name)])``; a list or
    tuple becomes ``all_of(*items)``. Operators are canonicalised. Raises ValueError naming
    what is wrong.
    """
    if rule is None:
        return None
    if isinstance(rule, list | tuple):
        return all_of(*rule)
    node = _normalize_node(rule, "trigger rule")
    if node["type"] in _RULE_TYPES:
        return node
    return {"type": "All", "conditions": [node]}


def referenced_tasks(rule: Any) -> set[str]:
    """Return the task names a rule (in any form `normalize_rule` accepts) mentions."""
    names: set[str] = set()
    pending = [normalize_rule(rule)]
    while pending:
        node = pending.pop()
        if node is None:
            continue
        if node["type"] in _TASK_CONDITIONS:
            names.add(node["task_name"])
        pending.extend(node.get("conditions", ()))
    return names


def _is_number(value: Any) -> bool:
    """True for JSON numbers (bool is not a number in JSON)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: numbers compare numerically, bools never equal numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if type(left) is not type(right) and not (isinstance(left, str) and isinstance(right, str)):
        return False
    return bool(left == right)


def _contains(container: Any, item: Any) -> bool:
    """Substring for strings, membership for lists, key presence for objects."""
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(_json_equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False


def _evaluate_context_value(node: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Evaluate a ContextValue condition; never raises for odd value types."""
    op = _canonical_operator(node["operator"])
    key = node["key"]
    if key not in context:
        return op in _TRUE_WHEN_MISSING
    actual = context[key]
    expected = node.get("value")
    if op == "Exists":
        return True
    if op == "NotExists":
        return False
    if op == "Equals":
        return _json_equal(actual, expected)
    if op == "NotEquals":
        return not _json_equal(actual, expected)
    if op in ("GreaterThan", "LessThan"):
        if not (_is_number(actual) and _is_number(expected)):
            return False
        return bool(actual > expected) if op == "GreaterThan" else bool(actual < expected)
    if op == "Contains":
        return _contains(actual, expected)
    return not _contains(actual, expected)  # NotContains


def evaluate_rule(
    rule: Mapping[str, Any] | str,
    statuses: Mapping[str, str],
    context: Mapping[str, Any],
) -> bool:
    """Decide whether a rule (or single condition) holds.

    `statuses` maps task id -> status ("Completed", "Failed", "Skipped", anything else);
    `context` is the task's input context data. Unknown node types raise ValueError.
    """
    if isinstance(rule, str):
        return statuses.get(rule) == "Completed"
    kind = rule.get("type")
    if kind == "Always":
        return True
    if kind in _TASK_STATUS:
        return statuses.get(rule["task_name"]) == _TASK_STATUS[kind]
    if kind == "ContextValue":
        return _evaluate_context_value(rule, context)
    if kind in ("All", "Any", "None"):
        results = (evaluate_rule(c, statuses, context) for c in rule.get("conditions", ()))
        if kind == "All":
            return all(results)
        held = any(results)
        return held if kind == "Any" else not held
    accepted = ", ".join((*_RULE_TYPES, *_CONDITION_TYPES))
    raise ValidationError(f"Unknown trigger rule type {kind!r}; accepted: {accepted}")
