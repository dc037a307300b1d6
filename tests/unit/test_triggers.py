"""Unit tests for cloaca.triggers.definition: definitions, results, registry and pure helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloaca.context import Context
from cloaca.triggers.definition import (
    Trigger,
    TriggerError,
    TriggerResult,
    TriggerSpec,
    add_trigger_listener,
    context_hash,
    get_trigger,
    normalize_poll_result,
    parse_interval,
    register_trigger,
    registered_triggers,
    remove_trigger_listener,
    trigger,
    unregister_trigger,
    with_trigger_metadata,
)


def _clear_registry() -> None:
    for spec in registered_triggers():
        unregister_trigger(spec.name)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Every test starts and ends with an empty process registry."""
    _clear_registry()
    yield
    _clear_registry()


@pytest.fixture
def heard() -> Iterator[list[TriggerSpec]]:
    """A subscribed listener's log of the specs it was told about."""
    log: list[TriggerSpec] = []
    add_trigger_listener(log.append)
    yield log
    remove_trigger_listener(log.append)


# --------------------------------------------------------------------------- class form


class ClassAttrTrigger(Trigger):
    name = "class_attrs"
    poll_interval = "2s"
    allow_concurrent = True

    def poll(self) -> TriggerResult:
        return TriggerResult.fire({"n": 1})


class InstanceAttrTrigger(Trigger):
    def __init__(self, label: str) -> None:
        self.name = f"inst_{label}"
        self.poll_interval = timedelta(milliseconds=250)
        self.allow_concurrent = False

    def poll(self) -> TriggerResult:
        return TriggerResult.skip()


class PropertyTrigger(Trigger):
    def __init__(self, label: str, seconds: int) -> None:
        self._label = label
        self._seconds = seconds

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"prop_{self._label}"

    @property
    def poll_interval(self) -> int:  # type: ignore[override]
        return self._seconds

    @property
    def allow_concurrent(self) -> bool:  # type: ignore[override]
        return True

    def poll(self) -> TriggerResult:
        return TriggerResult.skip()


class PlainTrigger(Trigger):
    def poll(self) -> TriggerResult:
        return TriggerResult.skip()


def test_class_attributes_are_read_at_registration() -> None:
    t = ClassAttrTrigger()
    spec = register_trigger(t)
    assert (spec.name, spec.poll_interval, spec.allow_concurrent) == (
        "class_attrs",
        timedelta(seconds=2),
        True,
    )
    assert spec.source is t and spec.workflow is None
    assert spec.is_async is False and spec.takes_cursor is False
    assert spec.poll() == TriggerResult.fire({"n": 1})
    assert get_trigger("class_attrs") is spec


def test_instance_attributes_are_read_at_registration() -> None:
    spec = register_trigger(InstanceAttrTrigger("a"))
    assert (spec.name, spec.poll_interval, spec.allow_concurrent) == (
        "inst_a",
        timedelta(milliseconds=250),
        False,
    )


def test_properties_are_read_at_registration() -> None:
    spec = register_trigger(PropertyTrigger("p", 7))
    assert (spec.name, spec.poll_interval, spec.allow_concurrent) == (
        "prop_p",
        timedelta(seconds=7),
        True,
    )


def test_init_kwargs_set_only_what_is_given() -> None:
    spec = register_trigger(PlainTrigger(name="kw", poll_interval="500ms", allow_concurrent=True))
    assert (spec.name, spec.poll_interval, spec.allow_concurrent) == (
        "kw",
        timedelta(milliseconds=500),
        True,
    )
    # Class attributes survive when the kwargs are not given.
    spec = register_trigger(ClassAttrTrigger(poll_interval=5))
    assert (spec.name, spec.poll_interval, spec.allow_concurrent) == (
        "class_attrs",
        timedelta(seconds=5),
        True,
    )


def test_defaults_are_thirty_seconds_and_not_concurrent() -> None:
    spec = register_trigger(PlainTrigger(name="defaults"))
    assert spec.poll_interval == timedelta(seconds=30)
    assert spec.allow_concurrent is False


def test_init_kwarg_for_read_only_property_is_a_clear_type_error() -> None:
    class Fixed(Trigger):
        @property
        def name(self) -> str:  # type: ignore[override]
            return "fixed"

        def poll(self) -> TriggerResult:
            return TriggerResult.skip()

    with pytest.raises(TypeError, match="Fixed defines 'name' as a read-only property"):
        Fixed(name="other")


def test_async_poll_is_detected() -> None:
    class AsyncTrigger(Trigger):
        name = "async_t"

        async def poll(self) -> TriggerResult:
            return TriggerResult.fire()

    spec = register_trigger(AsyncTrigger())
    assert spec.is_async is True
    assert asyncio.run(spec.poll()) == TriggerResult.fire()
    assert register_trigger(PlainTrigger(name="sync_t")).is_async is False


class _CursorEcho(Trigger):
    name = "echo"


def _make(poll: Any) -> Trigger:
    return type("T", (_CursorEcho,), {"poll": poll})()


@pytest.mark.parametrize(
    ("poll", "takes_cursor"),
    [
        (lambda self: TriggerResult.skip(), False),
        (lambda self, cursor: TriggerResult.skip(cursor=cursor), True),
        (lambda self, c: TriggerResult.skip(cursor=c), True),
        (lambda self, cursor=None: TriggerResult.skip(cursor=cursor), True),
        (lambda self, *, cursor=None: TriggerResult.skip(cursor=cursor), True),
        (lambda self, *args: TriggerResult.skip(), False),
        (lambda self, cursor, verbose=False: TriggerResult.skip(cursor=cursor), True),
    ],
    ids=["none", "cursor", "one-positional", "cursor-default", "kw-only", "varargs", "extra-opt"],
)
def test_cursor_parameter_is_detected(poll: Any, takes_cursor: bool) -> None:
    spec = register_trigger(_make(poll))
    assert spec.takes_cursor is takes_cursor
    if takes_cursor:
        # The engine passes the cursor positionally, whatever the parameter kind.
        assert spec.poll("c-1").cursor == "c-1"
    else:
        assert spec.poll().is_skip_result()


def test_async_keyword_only_cursor_is_adapted() -> None:
    class T(Trigger):
        name = "kw_async"

        async def poll(self, *, cursor: str | None = None) -> TriggerResult:
            return TriggerResult.skip(cursor=f"{cursor}+1")

    spec = register_trigger(T())
    assert spec.is_async and spec.takes_cursor
    assert asyncio.run(spec.poll("7")).cursor == "7+1"


@pytest.mark.parametrize(
    ("poll", "required"),
    [
        (lambda self, a, b: None, "(a, b)"),
        (lambda self, cursor, other: None, "(cursor, other)"),
        (lambda self, *, token: None, "(token)"),
    ],
)
def test_poll_with_extra_required_parameters_is_rejected(poll: Any, required: str) -> None:
    with pytest.raises(ValueError) as info:
        register_trigger(_make(poll))
    message = str(info.value)
    assert "'echo'" in message and "'cursor'" in message and f"requires {required}" in message


# --------------------------------------------------------------------------- decorator


def test_decorator_defaults_and_registration(heard: list[TriggerSpec]) -> None:
    def check_inbox() -> bool:
        return True

    decorated = trigger()(check_inbox)
    assert decorated is check_inbox
    spec = get_trigger("check_inbox")
    assert spec is not None and heard == [spec]
    assert spec.poll_interval == timedelta(seconds=30)
    assert spec.allow_concurrent is False and spec.workflow is None
    assert spec.source is check_inbox and spec.takes_cursor is False


def test_decorator_options_and_bool_results() -> None:
    state = {"ready": False}

    @trigger(name="files", on="file_processing", poll_interval="2s", allow_concurrent=True)
    def poll_files() -> bool:
        return state["ready"]

    spec = get_trigger("files")
    assert spec is not None
    assert (spec.workflow, spec.poll_interval, spec.allow_concurrent) == (
        "file_processing",
        timedelta(seconds=2),
        True,
    )
    assert normalize_poll_result(spec.poll(), spec.name).is_skip_result()
    state["ready"] = True
    assert normalize_poll_result(spec.poll(), spec.name) == TriggerResult.fire()


def test_bare_decorator_and_async_cursor_function() -> None:
    @trigger
    async def feed(cursor: str | None) -> TriggerResult:
        return TriggerResult.fire({"after": cursor}, cursor="next")

    spec = get_trigger("feed")
    assert spec is not None and spec.is_async and spec.takes_cursor
    result = asyncio.run(spec.poll("prev"))
    assert result.context is not None and result.context.to_dict() == {"after": "prev"}
    assert result.cursor == "next"


def test_register_trigger_accepts_an_already_decorated_function() -> None:
    @trigger(name="again")
    def again() -> bool:
        return False

    assert register_trigger(again) is get_trigger("again")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": ""}, "no valid name"),
        ({"poll_interval": 0}, "invalid poll_interval"),
        ({"poll_interval": "soon"}, "'soon'"),
        ({"allow_concurrent": "yes"}, "'yes'"),
        ({"on": ""}, "on="),
    ],
)
def test_decorator_rejects_bad_options(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):

        @trigger(**kwargs)
        def t() -> bool:
            return True

    assert registered_triggers() == []


# --------------------------------------------------------------------------- registration errors


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: PlainTrigger(), ["PlainTrigger", "no valid name", "None"]),
        (lambda: PlainTrigger(name=""), ["no valid name", "''"]),
        (lambda: PlainTrigger(name="   "), ["no valid name", "'   '"]),
        (lambda: _make_named(123), ["no valid name", "123"]),
        (lambda: PlainTrigger(name="z", poll_interval=0), ["'z'", "0", "greater than zero"]),
        (lambda: PlainTrigger(name="n", poll_interval=-5), ["'n'", "-5", "greater than zero"]),
        (lambda: PlainTrigger(name="g", poll_interval="often"), ["'g'", "'often'", "'500ms'"]),
        (lambda: PlainTrigger(name="s", poll_interval="0s"), ["'s'", "'0s'"]),
        (lambda: _make_named("c", allow_concurrent="no"), ["'c'", "allow_concurrent", "'no'"]),
        (lambda: _make_named("c1", allow_concurrent=1), ["'c1'", "allow_concurrent", "1"]),
        (lambda: Trigger(name="abstract"), ["does not implement poll()"]),
        (lambda: object(), ["not a trigger", "poll()"]),
    ],
)
def test_registration_errors_name_the_trigger_and_value(make: Any, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        register_trigger(make())
    for fragment in fragments:
        assert fragment in str(info.value)
    assert registered_triggers() == []


def _make_named(name: Any, **attrs: Any) -> Trigger:
    return type("Named", (PlainTrigger,), {"name": name, **attrs})()


def test_reregistering_a_name_replaces_it(heard: list[TriggerSpec]) -> None:
    first = register_trigger(PlainTrigger(name="same", poll_interval=1))
    second = register_trigger(PlainTrigger(name="same", poll_interval=2))
    assert get_trigger("same") is second
    assert registered_triggers() == [second]
    assert heard == [first, second]


def test_unregister_and_unknown_lookups() -> None:
    register_trigger(PlainTrigger(name="gone"))
    unregister_trigger("gone")
    unregister_trigger("never-there")  # no error
    assert get_trigger("gone") is None
    assert registered_triggers() == []


def test_concurrent_registration_keeps_every_trigger() -> None:
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(25):
            register_trigger(PlainTrigger(name=f"t{i}_{j}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(registered_triggers()) == 200


# --------------------------------------------------------------------------- listeners


def test_listeners_are_called_outside_the_lock_and_can_be_removed() -> None:
    seen: list[tuple[str, TriggerSpec | None]] = []

    def listener(spec: TriggerSpec) -> None:
        # Calling back into the registry would deadlock if we were called under its lock.
        seen.append((spec.name, get_trigger(spec.name)))

    add_trigger_listener(listener)
    add_trigger_listener(listener)  # subscribing twice still calls once
    try:
        spec = register_trigger(PlainTrigger(name="l1"))
    finally:
        remove_trigger_listener(listener)
    remove_trigger_listener(listener)  # no error when not subscribed
    register_trigger(PlainTrigger(name="l2"))
    assert seen == [("l1", spec)]


def test_a_failing_listener_does_not_stop_registration_or_others(
    heard: list[TriggerSpec], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(spec: TriggerSpec) -> None:
        raise RuntimeError("boom")

    remove_trigger_listener(heard.append)
    add_trigger_listener(broken)
    add_trigger_listener(heard.append)
    try:
        spec = register_trigger(PlainTrigger(name="robust"))
    finally:
        remove_trigger_listener(broken)
    assert heard == [spec] and get_trigger("robust") is spec
    assert "trigger listener failed" in caplog.text


# --------------------------------------------------------------------------- parse_interval


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2s", 2),
        ("500ms", 0.5),
        ("5m", 300),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("2", 2),
        (".25s", 0.25),
        (" 10s ", 10),
        ("3 m", 180),
        (3, 3),
        (0.1, 0.1),
        (timedelta(minutes=2), 120),
    ],
)
def test_parse_interval_accepts(value: Any, seconds: float) -> None:
    assert parse_interval(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        0.0,
        -0.5,
        math.nan,
        math.inf,
        True,
        False,
        "",
        "0s",
        "0ms",
        "-2s",
        "abc",
        "5 minutes",
        "1d",
        "1e3",
        "2S",
        None,
        [1],
        timedelta(0),
        timedelta(seconds=-1),
        10**20,
    ],
)
def test_parse_interval_rejects(value: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_interval(value, what="poll_interval of trigger 'x'")
    message = str(info.value)
    assert repr(value) in message
    assert "poll_interval of trigger 'x'" in message
    assert "'2s', '500ms', '5m', '1h'" in message


# --------------------------------------------------------------------------- context_hash

_json_leaf = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_contexts = st.dictionaries(st.text(), _json, max_size=6)


@given(_contexts)
def test_context_hash_ignores_key_order(ctx: dict[str, Any]) -> None:
    reordered = dict(reversed(list(ctx.items())))
    assert context_hash(reordered) == context_hash(ctx)


@given(_contexts)
def test_context_hash_is_sha256_of_canonical_json(ctx: dict[str, Any]) -> None:
    canonical = json.dumps(ctx, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert context_hash(ctx) == expected
    assert len(expected) == 64


def test_context_hash_special_cases() -> None:
    assert context_hash(None) == "fire_no_context"
    # An empty context is a context, not "no context".
    assert context_hash({}) == hashlib.sha256(b"{}").hexdigest()
    # Non-ASCII is hashed as UTF-8, not as \u escapes.
    assert (
        context_hash({"名前": "café", "a": [1, 2]})
        == hashlib.sha256('{"a":[1,2],"名前":"café"}'.encode()).hexdigest()
    )
    assert context_hash({"k": 1}) != context_hash({"k": 2})
    assert context_hash(Context({"b": 1, "a": {"y": 2, "x": 1}})) == context_hash(
        {"a": {"x": 1, "y": 2}, "b": 1}
    )


# --------------------------------------------------------------------------- TriggerResult


def test_skip_result() -> None:
    result = TriggerResult.skip()
    assert result.is_skip_result() and not result.is_fire_result()
    assert result.context is None and result.contexts == [] and result.cursor is None
    assert "Skip" in repr(result) and "Fire" not in repr(result)
    with_cursor = TriggerResult.skip(cursor="42")
    assert with_cursor.cursor == "42" and "'42'" in repr(with_cursor)


def test_fire_result_with_dict_context_and_cursor() -> None:
    data: dict[str, Any] = {"file": "a.csv", "meta": {"size": 3}}
    result = TriggerResult.fire(data, cursor="c9")
    data["meta"]["size"] = 99  # later mutation must not change what was fired
    assert result.is_fire_result() and not result.is_skip_result()
    assert isinstance(result.context, Context)
    assert result.context.to_dict() == {"file": "a.csv", "meta": {"size": 3}}
    assert result.contexts == [result.context]
    assert result.cursor == "c9"
    assert "Fire" in repr(result) and "a.csv" in repr(result) and "'c9'" in repr(result)


def test_fire_result_without_context_and_with_context_object() -> None:
    bare = TriggerResult.fire()
    assert bare.is_fire_result() and bare.context is None and bare.contexts == [None]
    assert "Fire" in repr(bare)
    ctx = Context({"k": "v"})
    result = TriggerResult.fire(ctx)
    ctx.set("k", "changed")
    assert result.context is not None and result.context.to_dict() == {"k": "v"}


def test_fire_many() -> None:
    result = TriggerResult.fire_many(({"i": i} for i in range(3)), cursor="end")
    assert result.is_fire_result()
    assert [c.to_dict() if c else None for c in result.contexts] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert result.context is not None and result.context.to_dict() == {"i": 0}
    assert result.cursor == "end" and "Fire" in repr(result)
    mixed = TriggerResult.fire_many([None, Context({"a": 1})])
    assert mixed.contexts[0] is None and mixed.context is None


# Deliberately untyped: the table below passes wrong types on purpose.
_TR: Any = TriggerResult


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [
        (lambda: _TR.fire({"when": datetime.now(UTC)}), TypeError, "when"),
        (lambda: _TR.fire(42), TypeError, "int"),
        (lambda: _TR.fire(["a"]), TypeError, "list"),
        (lambda: _TR.fire_many([]), ValueError, "at least one"),
        (lambda: _TR.fire_many({"a": 1}), TypeError, "dict"),
        (lambda: _TR.fire_many(["x"]), TypeError, "str"),
        (lambda: _TR.fire_many([{"ok": 1}, {"bad": object()}]), TypeError, "bad"),
        (lambda: _TR.fire(cursor=5), TypeError, "cursor"),
        (lambda: _TR.skip(cursor=b"x"), TypeError, "bytes"),
    ],
)
def test_trigger_result_rejects_bad_input(build: Any, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        build()


def test_trigger_error_message() -> None:
    err = TriggerError("upstream down")
    assert err.message == "upstream down" and str(err) == "upstream down"
    assert isinstance(err, Exception)


# --------------------------------------------------------------------------- normalize


def test_normalize_passes_results_and_converts_bools() -> None:
    result = TriggerResult.fire({"a": 1})
    assert normalize_poll_result(result, "t") is result
    assert normalize_poll_result(True, "t") == TriggerResult.fire()
    assert normalize_poll_result(False, "t") == TriggerResult.skip()


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        (None, ["'watcher'", "returned None", "TriggerResult.skip()"]),
        (1, ["'watcher'", "int", "TriggerResult.fire(...)", "bool"]),
        ("fire", ["'watcher'", "str"]),
        ({"a": 1}, ["'watcher'", "dict"]),
    ],
)
def test_normalize_rejects_other_values(value: Any, fragments: list[str]) -> None:
    with pytest.raises(TriggerError) as info:
        normalize_poll_result(value, "watcher")
    for fragment in fragments:
        assert fragment in info.value.message


def test_normalize_closes_an_unawaited_coroutine() -> None:
    async def poll() -> bool:
        return True

    # filterwarnings=error would turn a "never awaited" warning into a failure.
    with pytest.raises(TriggerError, match="coroutine"):
        normalize_poll_result(poll(), "watcher")


# --------------------------------------------------------------------------- metadata


def test_with_trigger_metadata_adds_keys() -> None:
    ts = "2025-01-10T12:00:00+00:00"
    assert with_trigger_metadata(None, "t", ts) == {"trigger_name": "t", "triggered_at": ts}
    assert with_trigger_metadata({"file": "a"}, "t", ts) == {
        "file": "a",
        "trigger_name": "t",
        "triggered_at": ts,
    }


def test_with_trigger_metadata_user_keys_win_and_input_is_not_aliased() -> None:
    user: dict[str, Any] = {"trigger_name": "mine", "triggered_at": "yesterday", "nested": {"x": 1}}
    out = with_trigger_metadata(user, "t", "2025-01-10T12:00:00Z")
    assert out == user
    out["nested"]["x"] = 2
    assert user["nested"]["x"] == 1
    from_ctx = with_trigger_metadata(Context({"k": 1}), "t", "2025-01-10T12:00:00Z")
    assert from_ctx == {"k": 1, "trigger_name": "t", "triggered_at": "2025-01-10T12:00:00Z"}


def test_with_trigger_metadata_formats_aware_datetimes_only() -> None:
    at = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
    assert with_trigger_metadata(None, "t", at)["triggered_at"] == "2025-01-10T12:00:00+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        with_trigger_metadata(None, "t", datetime(2025, 1, 10, 12, 0))
