"""Unit tests for cloaca.context.Context (SPEC section 3)."""

from __future__ import annotations

import enum
import json
import math
import re
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloaca.context import Context

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


class TestConstruction:
    def test_empty_by_default(self) -> None:
        ctx = Context()
        assert len(ctx) == 0
        assert ctx.to_dict() == {}

    def test_from_dict_copies_deeply(self) -> None:
        data = {"a": {"b": [1, 2]}}
        ctx = Context(data)
        data["a"]["b"].append(3)
        assert ctx["a"] == {"b": [1, 2]}

    def test_accepts_other_mappings(self) -> None:
        assert Context(OrderedDict(x=1)).to_dict() == {"x": 1}

    def test_tuples_become_lists(self) -> None:
        assert Context({"t": (1, 2)})["t"] == [1, 2]

    @pytest.mark.parametrize("data", [[1, 2], "abc", 5])
    def test_rejects_non_mapping(self, data: Any) -> None:
        with pytest.raises(TypeError, match="dict"):
            Context(data)

    @pytest.mark.parametrize("key", [1, 2.5, None, True, ("a",)])
    def test_rejects_non_str_keys(self, key: Any) -> None:
        with pytest.raises(TypeError, match=re.escape(repr(key))):
            Context({"ok": 1, key: 2})

    @pytest.mark.parametrize(
        ("value", "type_name"),
        [
            ({1, 2}, "set"),
            (object(), "object"),
            (Decimal("1.5"), "Decimal"),
            ({"nested": [1, {2, 3}]}, "set"),
            (b"bytes", "bytes"),
        ],
    )
    def test_rejects_non_json_values_naming_key_and_type(self, value: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Context({"good": 1, "bad_key": value})
        assert "bad_key" in str(info.value)
        assert type_name in str(info.value)

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan]])
    def test_rejects_nan_and_infinity(self, value: Any) -> None:
        with pytest.raises(TypeError, match="'f'.*NaN"):
            Context({"f": value})

    def test_rejects_circular_structure(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(TypeError, match="'loop'.*circular"):
            Context({"loop": loop})

    def test_rejects_nested_non_str_keys(self) -> None:
        with pytest.raises(TypeError, match="'outer'.*nested dict key 1"):
            Context({"outer": {"inner": {1: "x"}}})

    def test_subclasses_of_json_types_become_plain_values(self) -> None:
        class Colour(enum.StrEnum):
            RED = "red"

        class Size(enum.IntEnum):
            BIG = 3

        ctx = Context({Colour.RED: OrderedDict(size=Size.BIG, tags=(Colour.RED,))})
        assert ctx.to_dict() == {"red": {"size": 3, "tags": ["red"]}}
        value = ctx["red"]
        assert type(value) is dict
        assert type(value["size"]) is int
        assert type(value["tags"][0]) is str
        assert type(next(iter(ctx))) is str


class TestAccessors:
    def test_get_returns_default_when_missing(self) -> None:
        ctx = Context({"a": 1})
        assert ctx.get("a") == 1
        assert ctx.get("missing") is None
        assert ctx.get("missing", 7) == 7

    def test_get_of_nested_value_does_not_alias(self) -> None:
        ctx = Context({"a": {"b": [1]}})
        got = ctx.get("a")
        got["b"].append(2)
        assert ctx.get("a") == {"b": [1]}

    def test_getitem_does_not_alias(self) -> None:
        ctx = Context({"a": [1]})
        ctx["a"].append(2)
        assert ctx["a"] == [1]

    def test_getitem_missing_raises_keyerror(self) -> None:
        with pytest.raises(KeyError):
            Context()["nope"]

    def test_set_inserts_or_replaces(self) -> None:
        ctx = Context()
        ctx.set("a", 1)
        ctx.set("a", 2)
        assert ctx["a"] == 2

    def test_set_copies_value(self) -> None:
        ctx = Context()
        value = {"list": [1]}
        ctx.set("v", value)
        value["list"].append(2)
        assert ctx["v"] == {"list": [1]}

    def test_setitem_is_set(self) -> None:
        ctx = Context()
        ctx["k"] = [1, 2]
        assert ctx["k"] == [1, 2]

    @pytest.mark.parametrize("value", [{1, 2}, object(), math.nan])
    def test_set_rejects_non_json_value_naming_key(self, value: Any) -> None:
        ctx = Context()
        with pytest.raises(TypeError, match="the_key"):
            ctx.set("the_key", value)
        assert "the_key" not in ctx

    def test_set_rejects_non_str_key(self) -> None:
        with pytest.raises(TypeError, match="42"):
            Context().set(42, "v")  # type: ignore[arg-type]

    def test_insert_new_key(self) -> None:
        ctx = Context()
        ctx.insert("a", 1)
        assert ctx["a"] == 1

    def test_insert_existing_key_raises_valueerror(self) -> None:
        ctx = Context({"dup": 1})
        with pytest.raises(ValueError, match="Key already exists") as info:
            ctx.insert("dup", 2)
        assert "dup" in str(info.value)
        assert ctx["dup"] == 1

    def test_update_existing_key(self) -> None:
        ctx = Context({"a": 1})
        ctx.update("a", 2)
        assert ctx["a"] == 2

    def test_update_missing_key_raises_keyerror(self) -> None:
        ctx = Context()
        with pytest.raises(KeyError, match="ghost"):
            ctx.update("ghost", 1)
        assert "ghost" not in ctx

    def test_remove_returns_old_value_or_none(self) -> None:
        ctx = Context({"a": [1]})
        assert ctx.remove("a") == [1]
        assert "a" not in ctx
        assert ctx.remove("a") is None

    def test_delitem(self) -> None:
        ctx = Context({"a": 1})
        del ctx["a"]
        assert len(ctx) == 0
        with pytest.raises(KeyError):
            del ctx["a"]

    def test_len_contains_iter(self) -> None:
        ctx = Context({"b": 1, "a": 2})
        assert len(ctx) == 2
        assert "a" in ctx
        assert "z" not in ctx
        assert [] not in ctx  # unhashable: simply absent
        assert list(ctx) == ["b", "a"]


class TestBulkAndSerialisation:
    def test_to_dict_is_a_deep_copy(self) -> None:
        ctx = Context({"a": {"b": 1}})
        out = ctx.to_dict()
        out["a"]["b"] = 99
        assert ctx["a"] == {"b": 1}

    def test_update_from_dict_merges_keys(self) -> None:
        ctx = Context({"a": 1, "b": 2})
        ctx.update_from_dict({"b": 3, "c": [4]})
        assert ctx.to_dict() == {"a": 1, "b": 3, "c": [4]}

    def test_update_from_dict_is_all_or_nothing(self) -> None:
        ctx = Context({"a": 1})
        with pytest.raises(TypeError, match="bad"):
            ctx.update_from_dict({"a": 2, "bad": {1}})
        assert ctx.to_dict() == {"a": 1}

    def test_to_json_and_repr_are_compact(self) -> None:
        ctx = Context({"a": 1, "b": [1, 2], "s": "é"})
        assert ctx.to_json() == '{"a":1,"b":[1,2],"s":"é"}'
        assert repr(ctx) == 'Context({"a":1,"b":[1,2],"s":"é"})'

    def test_from_json_round_trip(self) -> None:
        ctx = Context.from_json('{"x": {"y": [1, 2.5, null, true]}}')
        assert ctx.to_dict() == {"x": {"y": [1, 2.5, None, True]}}

    @pytest.mark.parametrize(
        "text", ["{not json", "[1, 2]", '"str"', "3", "null", '{"a": NaN}', '{"a": Infinity}']
    )
    def test_from_json_rejects_bad_json_and_non_objects(self, text: str) -> None:
        with pytest.raises(ValueError):
            Context.from_json(text)

    def test_from_json_rejects_non_text(self) -> None:
        with pytest.raises(ValueError, match="dict"):
            Context.from_json({"a": 1})  # type: ignore[arg-type]

    def test_equality(self) -> None:
        assert Context({"a": 1}) == Context({"a": 1})
        assert Context({"a": 1}) != Context({"a": 2})
        assert Context({"a": 1}) != {"a": 1}

    def test_unhashable(self) -> None:
        with pytest.raises(TypeError):
            hash(Context())


class TestInternalHelpers:
    def test_adopt_takes_ownership_without_copy(self) -> None:
        data = {"a": [1]}
        ctx = Context._adopt(data)
        assert ctx._raw() is data
        assert ctx["a"] == [1]

    def test_raw_is_the_internal_dict(self) -> None:
        ctx = Context({"a": 1})
        ctx._raw()["b"] = 2
        assert ctx["b"] == 2


@given(json_objects)
def test_round_trips_through_json(data: dict[str, Any]) -> None:
    ctx = Context(data)
    assert ctx.to_dict() == data
    assert Context.from_json(ctx.to_json()) == ctx
    assert json.loads(repr(ctx)[len("Context(") : -1]) == data
