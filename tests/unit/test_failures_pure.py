"""The pure parts of visible failures: capping a traceback, and reading what an
``on_failure`` callback accepts."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from cloaca.engine.failures import cap
from cloaca.workflows.task import FailureArgs, failure_args_of


def test_a_short_text_is_kept_whole() -> None:
    assert cap("abc", limit=10) == "abc"
    assert cap("x" * 10, limit=10) == "x" * 10


def test_a_long_text_keeps_its_head_and_end_around_a_marker() -> None:
    text = "HEAD" + "m" * 10_000 + "END"
    capped = cap(text, limit=1000)
    assert 990 <= len(capped) <= 1000
    assert capped.startswith("HEAD") and capped.endswith("END")
    head, rest = capped.split("\n... [", 1)
    count, tail = rest.split(" characters cut: a stored traceback is at most 1000] ...\n")
    assert int(count) == len(text) - len(head) - len(tail)  # the marker says what is gone
    assert text.startswith(head) and text.endswith(tail)


def _three(task_id: str, error: str, context: Any) -> None: ...
def _four(task_id: str, error: str, context: Any, tb: str) -> None: ...
def _keyword(task_id: str, error: str, context: Any, *, traceback: str) -> None: ...
def _named(task_id: str, error: str, context: Any, traceback: str | None = None) -> None: ...
def _variadic(*args: Any) -> None: ...
def _five(a: Any, b: Any, c: Any, d: Any, traceback: Any) -> None: ...


class _Callable:
    def __call__(self, task_id: str, error: str, context: Any, traceback: str) -> None: ...

    def method(self, task_id: str, error: str, context: Any) -> None: ...


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        (None, FailureArgs.THREE),
        (_three, FailureArgs.THREE),
        (_variadic, FailureArgs.THREE),
        (_Callable().method, FailureArgs.THREE),
        (print, FailureArgs.THREE),
        (_four, FailureArgs.POSITIONAL),
        (functools.partial(_five, "bound"), FailureArgs.KEYWORD),
        (_keyword, FailureArgs.KEYWORD),
        (_named, FailureArgs.KEYWORD),
        (_Callable(), FailureArgs.KEYWORD),
    ],
)
def test_what_an_on_failure_callback_accepts(callback: Any, expected: FailureArgs) -> None:
    assert failure_args_of(callback) is expected
