"""Unit tests for cloaca.workflows.dag: graph validation, ordering and the context merge."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloaca.workflows.dag import (
    deep_merge,
    dependents,
    execution_levels,
    leaves,
    merge_outputs,
    roots,
    topological_order,
    validate_graph,
)

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random DAGs: each task may depend only on tasks created before it, then shuffled."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"t{i}" for i in range(n)]
    deps = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return {name: deps[name] for name in order}


class TestValidateGraph:
    def test_valid_graph_passes(self) -> None:
        validate_graph(DIAMOND, "w")

    @pytest.mark.parametrize("name", ["w", ""])
    def test_empty_graph(self, name: str) -> None:
        with pytest.raises(ValueError, match="cannot be empty"):
            validate_graph({}, name)

    def test_unknown_dependency_names_both_tasks(self) -> None:
        with pytest.raises(ValueError) as info:
            validate_graph({"a": [], "b": ["ghost"]}, "w")
        message = str(info.value)
        assert "'b'" in message
        assert "'ghost'" in message
        assert "'w'" in message

    def test_string_instead_of_list_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="list of task ids"):
            validate_graph({"a": [], "b": "a"})

    @pytest.mark.parametrize(
        ("deps", "expected"),
        [
            ({"a": ["a"]}, "Cycle detected in workflow 'w': a -> a"),
            ({"a": ["b"], "b": ["a"]}, "Cycle detected in workflow 'w': a -> b -> a"),
            (
                {"a": ["b"], "b": ["c"], "c": ["a"]},
                "Cycle detected in workflow 'w': a -> b -> c -> a",
            ),
            # The cycle is rotated to start at its earliest declared task.
            (
                {"x": [], "c": ["a"], "a": ["b"], "b": ["c", "x"]},
                "Cycle detected in workflow 'w': c -> a -> b -> c",
            ),
            # A root outside the cycle is not part of the message.
            (
                {"r": [], "p": ["q", "r"], "q": ["p"]},
                "Cycle detected in workflow 'w': p -> q -> p",
            ),
        ],
    )
    def test_cycles_are_named_in_order(self, deps: dict[str, list[str]], expected: str) -> None:
        with pytest.raises(ValueError) as info:
            validate_graph(deps, "w")
        assert str(info.value) == expected

    def test_cycle_without_workflow_name(self) -> None:
        with pytest.raises(ValueError, match=r"^Cycle detected: a -> b -> a$"):
            validate_graph({"a": ["b"], "b": ["a"]})

    def test_long_chain_does_not_hit_recursion_limit(self) -> None:
        n = 5000
        deps = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(n)}
        validate_graph(deps)
        assert topological_order(deps)[-1] == f"t{n - 1}"


class TestOrdering:
    @pytest.mark.parametrize(
        ("deps", "expected"),
        [
            (DIAMOND, ["a", "b", "c", "d"]),
            ({"c": [], "b": [], "a": []}, ["c", "b", "a"]),
            ({"late": ["x"], "x": [], "y": []}, ["x", "late", "y"]),
            ({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []}, ["a", "c", "b", "d"]),
            ({"a": [], "b": ["a", "a"]}, ["a", "b"]),
        ],
    )
    def test_topological_order_is_deterministic(
        self, deps: dict[str, list[str]], expected: list[str]
    ) -> None:
        assert topological_order(deps) == expected

    @pytest.mark.parametrize(
        ("deps", "match"),
        [({"a": ["b"], "b": ["a"]}, "Cycle"), ({"a": ["zz"]}, "zz")],
    )
    def test_topological_order_rejects_invalid_graphs(
        self, deps: dict[str, list[str]], match: str
    ) -> None:
        with pytest.raises(ValueError, match=match):
            topological_order(deps)

    @pytest.mark.parametrize(
        ("deps", "expected"),
        [
            (DIAMOND, [["a"], ["b", "c"], ["d"]]),
            ({"a": [], "b": [], "c": ["a"]}, [["a", "b"], ["c"]]),
            # d is one past its deepest dependency (c at level 2), not its shallowest (a).
            ({"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]}, [["a"], ["b"], ["c"], ["d"]]),
        ],
    )
    def test_execution_levels(self, deps: dict[str, list[str]], expected: list[list[str]]) -> None:
        assert execution_levels(deps) == expected

    def test_roots_leaves_dependents(self) -> None:
        deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": []}
        assert roots(deps) == ["a", "e"]
        assert leaves(deps) == ["c", "d", "e"]
        assert dependents(deps) == {"a": ["b", "c"], "b": ["d"], "c": [], "d": [], "e": []}

    @given(dags())
    def test_topological_order_respects_every_edge(self, deps: dict[str, list[str]]) -> None:
        order = topological_order(deps)
        assert sorted(order) == sorted(deps)
        position = {task: i for i, task in enumerate(order)}
        for task, task_deps in deps.items():
            for dep in task_deps:
                assert position[dep] < position[task]

    @given(dags())
    def test_levels_are_consistent(self, deps: dict[str, list[str]]) -> None:
        levels = execution_levels(deps)
        level_of = {task: i for i, level in enumerate(levels) for task in level}
        assert sorted(level_of) == sorted(deps)
        assert levels[0] == roots(deps)
        for task, task_deps in deps.items():
            expected = 1 + max((level_of[d] for d in task_deps), default=-1)
            assert level_of[task] == expected


class TestMerge:
    @pytest.mark.parametrize(
        ("base", "override", "expected"),
        [
            ({}, {}, {}),
            ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
            ({"a": 1}, {"a": 2}, {"a": 2}),
            ({"a": {"x": 1, "y": 1}}, {"a": {"y": 2, "z": 3}}, {"a": {"x": 1, "y": 2, "z": 3}}),
            ({"a": [1, 2]}, {"a": [3]}, {"a": [1, 2, 3]}),
            ({"a": [1, 2]}, {"a": [2, 3, 3]}, {"a": [1, 2, 3]}),
            ({"a": [1, 1]}, {"a": [1]}, {"a": [1, 1]}),
            ({"a": [1]}, {"a": [True, 1.0, "1"]}, {"a": [1, True, 1.0, "1"]}),
            (
                {"a": [{"x": 1, "y": 2}]},
                {"a": [{"y": 2, "x": 1}, {"x": 3}]},
                {"a": [{"x": 1, "y": 2}, {"x": 3}]},
            ),
            ({"a": {"l": ["p"]}}, {"a": {"l": ["q"]}}, {"a": {"l": ["p", "q"]}}),
            ({"a": [1]}, {"a": 5}, {"a": 5}),
            ({"a": 5}, {"a": [1]}, {"a": [1]}),
            ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
            ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
            (
                {"a": {"b": {"c": 1, "d": 1}}},
                {"a": {"b": {"d": 2}}},
                {"a": {"b": {"c": 1, "d": 2}}},
            ),
            ({"a": None}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ],
    )
    def test_deep_merge_table(
        self, base: dict[str, Any], override: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        before = (copy.deepcopy(base), copy.deepcopy(override))
        assert deep_merge(base, override) == expected
        assert (base, override) == before

    def test_deep_merge_returns_new_dict(self) -> None:
        base = {"a": {"x": 1}}
        result = deep_merge(base, {"a": {"y": 2}})
        assert result is not base
        assert result["a"] is not base["a"]

    def test_merge_outputs_later_wins(self) -> None:
        outputs = [{"a": 1, "n": {"x": 1}}, {"a": 2, "n": {"y": 2}}, {"b": 3}]
        assert merge_outputs(outputs) == {"a": 2, "b": 3, "n": {"x": 1, "y": 2}}

    def test_merge_outputs_does_not_mutate_inputs(self) -> None:
        outputs = [{"n": {"x": 1}}, {"n": {"y": 2}}]
        snapshot = copy.deepcopy(outputs)
        merge_outputs(outputs)
        assert outputs == snapshot

    def test_merge_outputs_empty(self) -> None:
        assert merge_outputs([]) == {}


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
json_tree = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("abc"), children, max_size=3)
    ),
    max_leaves=10,
)
json_dicts = st.dictionaries(st.sampled_from("abcd"), json_tree, max_size=4)


@given(json_dicts, json_dicts, json_dicts)
def test_merge_outputs_is_a_left_fold(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    assert merge_outputs([a, b, c]) == deep_merge(deep_merge(a, b), c)
    assert merge_outputs([a, b, c]) == deep_merge(merge_outputs([a, b]), c)


def test_merge_is_not_associative_when_a_scalar_sits_between_dicts() -> None:
    # Documents a real limit: a scalar in the middle output hides the first dict for a
    # left fold, but not when the last two are merged first. Order of merging matters.
    a, b, c = {"k": {"x": 1}}, {"k": 5}, {"k": {"y": 2}}
    assert merge_outputs([a, b, c]) == {"k": {"y": 2}}
    assert deep_merge(a, deep_merge(b, c)) == {"k": {"x": 1, "y": 2}}


@given(json_dicts, json_dicts, json_dicts)
def test_merge_is_associative_for_nested_dicts_only(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    def only_dicts(d: dict[str, Any]) -> dict[str, Any]:
        return {k: only_dicts(v) if isinstance(v, dict) else {} for k, v in d.items()}

    a, b, c = only_dicts(a), only_dicts(b), only_dicts(c)
    assert deep_merge(deep_merge(a, b), c) == deep_merge(a, deep_merge(b, c))


@given(json_dicts)
def test_empty_dict_is_identity(a: dict[str, Any]) -> None:
    assert deep_merge(a, {}) == a
    assert deep_merge({}, a) == a
    assert merge_outputs([a]) == a
    assert deep_merge(a, a) == a
