"""The two drives the engine hands user code to: threads at once, or rounds by hand."""

from __future__ import annotations

import threading
from typing import Any

from cloaca.engine.aio import AsyncBridge
from cloaca.engine.drive import Threads
from cloaca.engine.stepped import Stepped


class _Attempt:
    """Stands in for an engine Attempt: the drives only pass it to the body."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_threads_run_an_attempt_at_once_on_another_thread() -> None:
    drive = Threads(threading.Event(), AsyncBridge())
    ran = threading.Event()
    where: list[Any] = []

    def body(attempt: Any) -> None:
        where.append((attempt.name, threading.current_thread() is threading.main_thread()))
        ran.set()

    try:
        drive.run_attempt(body, _Attempt("a"))
        assert ran.wait(5)
        assert where == [("a", False)]
        assert drive.end_round() is False  # nothing waits for a round
    finally:
        drive.shutdown()


def test_threads_pause_waits_out_its_time_unless_the_engine_stops() -> None:
    stopping = threading.Event()
    drive = Threads(stopping, AsyncBridge())
    assert drive.pause(_Attempt("a"), 0.01) is False
    stopping.set()
    assert drive.pause(_Attempt("a"), 60) is True


def test_stepped_runs_nothing_until_the_round_ends_then_runs_what_it_claims_too() -> None:
    drive = Stepped(threading.Event(), AsyncBridge())
    order: list[str] = []

    def body(attempt: Any) -> None:
        order.append(attempt.name)
        if attempt.name == "first":  # finishing hands over the next one (a chain)
            drive.run_attempt(body, _Attempt("second"))

    try:
        drive.run_attempt(body, _Attempt("first"))
        assert order == []
        assert drive.end_round() is True
        assert order == ["first", "second"]
        assert drive.end_round() is False
    finally:
        drive.shutdown()


def test_stepped_looks_at_a_deferred_attempt_once_per_round() -> None:
    stopping = threading.Event()
    drive = Stepped(stopping, AsyncBridge())
    looks: list[int] = []
    ready_after = 3

    def body(attempt: Any) -> None:
        while True:  # what TaskHandle.defer_until does
            looks.append(len(looks) + 1)
            if len(looks) >= ready_after:
                return
            if drive.pause(attempt, 3600):  # fake time: the hour never passes for real
                return

    try:
        drive.run_attempt(body, _Attempt("deferred"))
        assert drive.end_round() is False  # looked once, waits
        assert looks == [1]
        assert drive.end_round() is False
        assert looks == [1, 2]
        assert drive.end_round() is True  # the third look finds its condition met
        assert looks == [1, 2, 3]
    finally:
        drive.shutdown()


def test_stepped_stop_gives_back_what_never_started_and_wakes_the_deferred() -> None:
    stopping = threading.Event()
    drive = Stepped(stopping, AsyncBridge())
    woke = threading.Event()

    def deferred(attempt: Any) -> None:
        if drive.pause(attempt, 3600):
            woke.set()

    try:
        drive.run_attempt(deferred, _Attempt("deferred"))
        drive.end_round()
        never = _Attempt("never")
        drive.run_attempt(lambda attempt: None, never)
        stopping.set()
        assert drive.stop() == [never]
        assert woke.wait(5)
    finally:
        drive.shutdown()
