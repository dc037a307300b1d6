"""Limits checked at the door, as pure functions: names, schema names and the channel they
derive, context nesting depth and size, the iterative merge, the config field."""

from __future__ import annotations

import json
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, Trigger, TriggerResult
from cloaca.context import MAX_CONTEXT_DEPTH, ContextLimitError, check_context_size
from cloaca.names import MAX_IDENTIFIER_BYTES, MAX_NAME_LENGTH, check_name, check_schema_name
from cloaca.store.drivers.postgres import notification_channel
from cloaca.workflows.dag import deep_merge, merge_outputs
from cloaca.workflows.registry import get_workflow, registered_workflows

BAD_NAMES = [
    ("a\x00b", "'\\x00'"),
    ("line\n", "'\\n'"),
    ("tab\there", "'\\t'"),
    ("cr\r", "'\\r'"),
    ("del\x7f", "'\\x7f'"),
    ("\x1b[31mred", "'\\x1b'"),
    ("\x85next-line", "'\\x85'"),  # C1 controls are Cc too
    ("", "empty"),
    ("   ", "only whitespace"),
    ("\u3000", "only whitespace"),  # ideographic space: whitespace, not a control
    ("x" * (MAX_NAME_LENGTH + 1), f"over the limit of {MAX_NAME_LENGTH}"),
    (None, "got NoneType"),
    (42, "got int"),
]


def nested(levels: int, leaf: Any = 1) -> Any:
    """A value nesting ``levels`` lists: nested(2) == [[1]]."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def nested_dicts(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """``levels`` dicts inside each other under key "n", ``leaf`` the innermost one."""
    value = leaf
    for _ in range(levels - 1):
        value = {"n": value}
    return value


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "why"), BAD_NAMES)
def test_check_name_rejects_naming_the_value_and_the_rule(value: Any, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_name("workflow name", value)
    message = str(caught.value)
    assert message.startswith("workflow name ")
    assert why in message
    assert repr(value)[:20] in message
    assert "accepted: a non-empty string" in message and "control characters" in message


@pytest.mark.parametrize(
    "value",
    ["simple", "Simple ", "with space", "ünïcødé", "名前", "a-b.c/d:e", "x" * MAX_NAME_LENGTH],
)
def test_check_name_accepts_ordinary_names(value: str) -> None:
    assert check_name("workflow name", value) == value


def test_a_very_long_rejected_name_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        check_name("task id", "y" * 10_000)
    assert len(str(caught.value)) < 500
    assert "10000 characters long" in str(caught.value)


@pytest.mark.parametrize(("value", "why"), BAD_NAMES[:5])
def test_every_registration_path_rejects_a_bad_name(value: str, why: str) -> None:
    @cloaca.task(id="ok")
    def ok(context: Context) -> None:
        return None

    attempts = [
        lambda: cloaca.WorkflowBuilder(value),
        lambda: cloaca.workflow(value, [ok]),
        lambda: cloaca.Workflow(value, []),
        lambda: cloaca.register_workflow_constructor(value, lambda: cloaca.WorkflowBuilder("w")),
        lambda: cloaca.task(id=value),
        lambda: cloaca.task(dependencies=[value]),
        lambda: cloaca.trigger(name=value)(lambda: True),
        lambda: cloaca.trigger(on=value)(lambda: True),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError, match=why.replace("\\", "\\\\")):
            attempt()
    assert registered_workflows() == [] and get_workflow(value) is None
    assert cloaca.triggers.definition.registered_triggers() == []


def test_a_trigger_instance_with_a_bad_name_is_rejected_with_the_hint() -> None:
    class Named(Trigger):
        def poll(self) -> TriggerResult:
            return TriggerResult.skip()

    with pytest.raises(ValueError) as caught:
        cloaca.register_trigger(Named(name="nul\x00"))
    assert "no valid name" in str(caught.value)
    assert "'\\x00'" in str(caught.value) and "Trigger(name=...)" in str(caught.value)


# -- schema names and the notification channel ------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("", "Schema name cannot be empty"),
        (None, "Schema name cannot be empty"),
        ("tenant\n", "only alphanumeric characters and underscores"),
        ("bad-name;", "only alphanumeric characters and underscores"),
        ("tënant", "only alphanumeric characters and underscores"),
        (
            "s" * (MAX_IDENTIFIER_BYTES + 1),
            "64 bytes long, over PostgreSQL's identifier limit of 63",
        ),
    ],
)
def test_check_schema_name_rejects(schema: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        check_schema_name(schema)
    with pytest.raises(ValueError, match=fragment):
        cloaca.DefaultRunner.with_schema("postgres://localhost/db", schema)


def test_notification_channel_is_the_plain_name_when_it_fits() -> None:
    assert notification_channel(None) == "cloaca"
    assert notification_channel("tenant_a") == "cloaca_tenant_a"
    fits = "s" * (MAX_IDENTIFIER_BYTES - len("cloaca_"))
    assert notification_channel(fits) == f"cloaca_{fits}"


def test_notification_channel_of_a_long_schema_fits_and_stays_distinct() -> None:
    longest = "t" * MAX_IDENTIFIER_BYTES
    other = "t" * (MAX_IDENTIFIER_BYTES - 1) + "u"  # same prefix, differs at the very end
    channels = {notification_channel(s) for s in (longest, other, longest[:-1], longest[:57])}
    assert len(channels) == 4
    for channel in channels:
        assert channel.startswith("cloaca_ttt")
        assert len(channel.encode()) <= MAX_IDENTIFIER_BYTES
    assert notification_channel(longest) == notification_channel(longest)  # deterministic


def test_notification_channel_rejects_a_schema_over_the_identifier_limit() -> None:
    with pytest.raises(ValueError, match="64 bytes long.*limit of 63"):
        notification_channel("s" * 64)


# -- context nesting ----------------------------------------------------------------------------


def test_a_value_at_the_nesting_limit_is_accepted_everywhere() -> None:
    deep = nested(MAX_CONTEXT_DEPTH)
    ctx = Context({"k": deep})
    ctx.set("s", deep)
    ctx.insert("i", deep)
    ctx.update("i", deep)
    ctx.update_from_dict({"u": deep})
    assert Context.from_json(ctx.to_json()) == ctx
    assert ctx["k"] == deep


@pytest.mark.parametrize(
    "build",
    [
        lambda v: Context({"key": v}),
        lambda v: Context().set("key", v),
        lambda v: Context().insert("key", v),
        lambda v: Context({"key": 1}).update("key", v),
        lambda v: Context().update_from_dict({"key": v}),
        lambda v: Context.from_json(json.dumps({"key": v})),
        lambda v: Context.from_json(json.dumps({"key": v}).encode()),
        lambda v: TriggerResult.fire({"key": v}),
    ],
)
@pytest.mark.parametrize(
    "value",
    [nested(MAX_CONTEXT_DEPTH + 1), nested_dicts(MAX_CONTEXT_DEPTH + 1, {}), nested(500)],
    ids=["lists-101", "dicts-101", "lists-500"],
)
def test_a_value_beyond_the_nesting_limit_is_refused_naming_key_and_limit(
    build: Any, value: Any
) -> None:
    with pytest.raises(ContextLimitError, match=f"'key' is nested more than {MAX_CONTEXT_DEPTH}"):
        build(value)


def test_context_limit_error_is_a_value_error() -> None:
    assert issubclass(ContextLimitError, ValueError)


def test_a_circular_value_is_still_reported_as_circular() -> None:
    loop: list[Any] = []
    loop.append([loop])
    with pytest.raises(TypeError, match="'loop'.*circular"):
        Context({"loop": loop})


def test_from_json_with_many_shallow_brackets_is_not_refused() -> None:
    wide = {"k": [[i] for i in range(MAX_CONTEXT_DEPTH * 3)]}
    assert Context.from_json(json.dumps(wide))["k"][-1] == [MAX_CONTEXT_DEPTH * 3 - 1]


# -- context size -------------------------------------------------------------------------------


def test_check_context_size_counts_utf8_bytes() -> None:
    assert check_context_size('{"a":"xx"}', 10, "ctx") == '{"a":"xx"}'
    # 9 characters, but 10 bytes of UTF-8: the limit is in bytes.
    with pytest.raises(ContextLimitError, match="ctx is 10 bytes of JSON, over the limit of 9"):
        check_context_size('{"a":"é"}', 9, "ctx")
    assert check_context_size('{"a":"é"}', 10, "ctx") == '{"a":"é"}'


def test_max_context_bytes_is_a_validated_config_field() -> None:
    assert DefaultRunnerConfig().max_context_bytes == 16 * 1024 * 1024
    assert DefaultRunnerConfig(max_context_bytes=1000).to_dict()["max_context_bytes"] == 1000
    for bad in (0, 1, -5, 1.5, True, "big"):
        with pytest.raises(ValueError, match=f"max_context_bytes={bad!r} is invalid"):
            DefaultRunnerConfig(max_context_bytes=bad)
    config = DefaultRunnerConfig()
    with pytest.raises(ValueError, match="max_context_bytes"):
        config.max_context_bytes = 0


# -- the merge ----------------------------------------------------------------------------------


def test_the_merge_handles_any_depth_without_recursion() -> None:
    depth = 5000  # far past the interpreter's recursion limit
    left = nested_dicts(depth, {"left": 1})
    right = nested_dicts(depth, {"right": 2})
    merged: Any = merge_outputs([{"t": left}, {"t": right}])["t"]
    for _ in range(depth - 1):
        merged = merged["n"]
    assert merged == {"left": 1, "right": 2}


def test_deep_merge_copies_nested_dicts_it_merges_into() -> None:
    base = {"a": {"b": {"c": 1}}, "keep": [1]}
    result = deep_merge(base, {"a": {"b": {"d": 2}}, "new": {"x": 1}})
    assert result == {"a": {"b": {"c": 1, "d": 2}}, "keep": [1], "new": {"x": 1}}
    assert base == {"a": {"b": {"c": 1}}, "keep": [1]}
