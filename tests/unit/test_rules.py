"""Unit tests for cloaca.workflows.rules: trigger-rule builders, validation and evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from cloaca.workflows.rules import (
    OPERATORS,
    all_of,
    always,
    any_of,
    context_value,
    evaluate_rule,
    none_of,
    normalize_rule,
    referenced_tasks,
    task_failed,
    task_skipped,
    task_success,
)


class TestBuilders:
    def test_shapes_mirror_upstream_serde(self) -> None:
        assert always() == {"type": "Always"}
        assert task_success("a") == {"type": "TaskSuccess", "task_name": "a"}
        assert task_failed("a") == {"type": "TaskFailed", "task_name": "a"}
        assert task_skipped("a") == {"type": "TaskSkipped", "task_name": "a"}
        assert context_value("k", "equals", 1) == {
            "type": "ContextValue",
            "key": "k",
            "operator": "Equals",
            "value": 1,
        }
        assert all_of(task_success("a")) == {
            "type": "All",
            "conditions": [{"type": "TaskSuccess", "task_name": "a"}],
        }
        assert any_of()["type"] == "Any"
        assert none_of()["type"] == "None"

    def test_bare_strings_mean_task_success(self) -> None:
        assert all_of("a", task_failed("b")) == {
            "type": "All",
            "conditions": [task_success("a"), task_failed("b")],
        }

    def test_nested_rules_are_allowed(self) -> None:
        rule = any_of(all_of("a", "b"), none_of("c"))
        assert rule["conditions"][0] == all_of("a", "b")
        assert rule["conditions"][1] == none_of("c")

    @pytest.mark.parametrize(
        ("spelling", "canonical"),
        [
            ("equals", "Equals"),
            ("==", "Equals"),
            ("eq", "Equals"),
            ("EQ", "Equals"),
            ("Equals", "Equals"),
            ("not_equals", "NotEquals"),
            ("!=", "NotEquals"),
            ("ne", "NotEquals"),
            ("NotEquals", "NotEquals"),
            ("greater_than", "GreaterThan"),
            (">", "GreaterThan"),
            ("gt", "GreaterThan"),
            ("GREATER_THAN", "GreaterThan"),
            ("less_than", "LessThan"),
            ("<", "LessThan"),
            ("lt", "LessThan"),
            ("contains", "Contains"),
            ("not_contains", "NotContains"),
            ("NotContains", "NotContains"),
            ("exists", "Exists"),
            ("not_exists", "NotExists"),
            ("NotExists", "NotExists"),
        ],
    )
    def test_operator_canonicalisation(self, spelling: str, canonical: str) -> None:
        assert context_value("k", spelling, 1)["operator"] == canonical

    def test_every_canonical_operator_is_accepted(self) -> None:
        assert [context_value("k", op)["operator"] for op in OPERATORS] == list(OPERATORS)

    @pytest.mark.parametrize("operator", ["approx", ">=", "", None])
    def test_unknown_operator_is_named_and_accepted_listed(self, operator: Any) -> None:
        with pytest.raises(ValueError) as info:
            context_value("k", operator, 1)
        message = str(info.value)
        assert repr(operator) in message
        assert "greater_than" in message
        assert "==" in message

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda: task_success(""), "task name"),
            (lambda: task_failed(3), "task name"),
            (lambda: context_value("", "eq", 1), "key"),
            (lambda: context_value("k", "eq", {1, 2}), "JSON"),
            (lambda: all_of(42), "42"),
        ],
    )
    def test_builder_rejects_bad_input(self, call: Any, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            call()


class TestNormalizeRule:
    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            (None, None),
            ("a", {"type": "All", "conditions": [task_success("a")]}),
            (task_failed("a"), {"type": "All", "conditions": [task_failed("a")]}),
            (
                {"type": "ContextValue", "key": "k", "operator": "gt", "value": 3},
                {"type": "All", "conditions": [context_value("k", "greater_than", 3)]},
            ),
            (always(), always()),
            (any_of("a", "b"), any_of("a", "b")),
            (["a", task_skipped("b")], all_of("a", task_skipped("b"))),
            (
                {"type": "None", "conditions": ["x"]},
                {"type": "None", "conditions": [task_success("x")]},
            ),
            (
                {"type": "ContextValue", "key": "k", "operator": "exists"},
                {"type": "All", "conditions": [context_value("k", "exists")]},
            ),
        ],
    )
    def test_accepted_forms(self, rule: Any, expected: Any) -> None:
        assert normalize_rule(rule) == expected

    def test_returns_a_fresh_dict(self) -> None:
        rule = all_of("a")
        normalized = normalize_rule(rule)
        assert normalized == rule
        assert normalized is not rule

    @pytest.mark.parametrize(
        ("rule", "match"),
        [
            ({"type": "Sometimes"}, "Sometimes"),
            ({"kind": "All"}, "missing 'type'"),
            ({"type": "All"}, "conditions"),
            ({"type": "All", "conditions": "a"}, "conditions"),
            ({"type": "TaskSuccess"}, "task_name"),
            ({"type": "TaskSuccess", "task": "a"}, "task"),
            ({"type": "ContextValue", "key": "k"}, "operator"),
            ({"type": "ContextValue", "key": "k", "operator": "approx"}, "approx"),
            ({"type": "All", "conditions": [{"type": "Bogus"}]}, "Bogus"),
            (42, "42"),
        ],
    )
    def test_rejections_name_the_problem(self, rule: Any, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            normalize_rule(rule)


class TestReferencedTasks:
    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            (None, set()),
            (always(), set()),
            ("a", {"a"}),
            (
                all_of("a", task_failed("b"), any_of(task_skipped("c"), none_of("a"))),
                {"a", "b", "c"},
            ),
            (all_of(context_value("k", "exists")), set()),
        ],
    )
    def test_referenced_tasks(self, rule: Any, expected: set[str]) -> None:
        assert referenced_tasks(rule) == expected


STATUSES = {"ok": "Completed", "bad": "Failed", "skip": "Skipped", "run": "Running"}


class TestEvaluateTaskConditions:
    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            (always(), True),
            (all_of(), True),
            (any_of(), False),
            (none_of(), True),
            (all_of("ok"), True),
            (all_of("bad"), False),
            (all_of("skip"), False),
            (all_of("run"), False),
            (all_of("missing"), False),
            (all_of(task_failed("bad")), True),
            (all_of(task_failed("ok")), False),
            (all_of(task_skipped("skip")), True),
            (all_of(task_skipped("ok")), False),
            (all_of("ok", task_failed("bad")), True),
            (all_of("ok", "bad"), False),
            (any_of("bad", "ok"), True),
            (any_of("bad", "skip"), False),
            (none_of("bad", "skip"), True),
            (none_of("bad", "ok"), False),
            (any_of(all_of("ok", "skip"), all_of(task_failed("bad"))), True),
            (none_of(always()), False),
            ("ok", True),
            (task_success("bad"), False),
        ],
    )
    def test_table(self, rule: Any, expected: bool) -> None:
        assert evaluate_rule(rule, STATUSES, {}) is expected

    def test_unknown_type_raises(self) -> None:
        with pytest.raises(ValueError, match="Weird"):
            evaluate_rule({"type": "Weird"}, {}, {})


CONTEXT: dict[str, Any] = {
    "n": 5,
    "f": 2.5,
    "s": "hello world",
    "l": [1, "two", {"x": 1}],
    "d": {"k": 1},
    "b": True,
    "z": None,
}


@pytest.mark.parametrize(
    ("key", "op", "value", "expected"),
    [
        ("n", "equals", 5, True),
        ("n", "==", 5.0, True),
        ("n", "eq", 6, False),
        ("n", "equals", "5", False),
        ("b", "equals", True, True),
        ("b", "equals", 1, False),  # JSON true is not the number 1
        ("n", "equals", True, False),
        ("z", "equals", None, True),
        ("d", "equals", {"k": 1}, True),
        ("d", "equals", {"k": 1.0}, True),
        ("d", "equals", {"k": True}, False),
        ("l", "equals", [1, "two", {"x": 1}], True),
        ("n", "not_equals", 6, True),
        ("n", "!=", 5, False),
        ("missing", "not_equals", 1, True),
        ("missing", "equals", None, False),
        ("n", "greater_than", 4, True),
        ("n", ">", 5, False),
        ("f", "gt", 2, True),
        ("n", "less_than", 6, True),
        ("n", "<", 5, False),
        ("f", "lt", 2.6, True),
        ("s", "greater_than", 1, False),  # non-numbers never raise
        ("n", "greater_than", "1", False),
        ("b", "greater_than", 0, False),  # bool is not a number
        ("n", "less_than", None, False),
        ("missing", "greater_than", 1, False),
        ("missing", "less_than", 1, False),
        ("s", "contains", "world", True),
        ("s", "contains", "mars", False),
        ("s", "contains", 1, False),
        ("l", "contains", "two", True),
        ("l", "contains", 1.0, True),
        ("l", "contains", {"x": 1}, True),
        ("l", "contains", 3, False),
        ("d", "contains", "k", True),
        ("d", "contains", "q", False),
        ("n", "contains", 5, False),
        ("missing", "contains", "x", False),
        ("s", "not_contains", "mars", True),
        ("l", "not_contains", "two", False),
        ("missing", "not_contains", "x", True),
        ("n", "exists", None, True),
        ("z", "exists", None, True),  # present with a null value still exists
        ("missing", "exists", None, False),
        ("missing", "not_exists", None, True),
        ("n", "not_exists", None, False),
    ],
)
def test_context_value_table(key: str, op: str, value: Any, expected: bool) -> None:
    rule = all_of(context_value(key, op, value))
    assert evaluate_rule(rule, {}, CONTEXT) is expected


def test_context_value_combines_with_task_conditions() -> None:
    rule = all_of("ok", context_value("n", "gt", 1))
    assert evaluate_rule(rule, STATUSES, CONTEXT) is True
    assert evaluate_rule(rule, STATUSES, {"n": 0}) is False


def test_evaluate_accepts_unnormalized_operator_in_dict() -> None:
    condition = {"type": "ContextValue", "key": "n", "operator": "gt", "value": 1}
    assert evaluate_rule({"type": "All", "conditions": [condition]}, {}, {"n": 2}) is True
