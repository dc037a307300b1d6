"""The sync poll threads: every queued poll runs, and a poll that blocks never holds up
the polls queued behind it while a thread is free (bounded waits, real threads)."""

from __future__ import annotations

import threading

from cloaca.engine.triggers.poll_workers import PollWorkers


def test_every_queued_call_runs() -> None:
    pool = PollWorkers("test-poll", 3)
    done: list[int] = []
    finished = threading.Event()
    lock = threading.Lock()

    def body(n: int) -> None:
        with lock:
            done.append(n)
            if len(done) == 200:
                finished.set()

    try:
        for start in range(0, 200, 20):
            pool.submit_all(body, range(start, start + 20))
        assert finished.wait(10)
        assert sorted(done) == list(range(200))
    finally:
        pool.shutdown()


def test_a_blocking_call_does_not_hold_up_the_ones_queued_behind_it() -> None:
    pool = PollWorkers("test-poll", 2)
    release = threading.Event()
    quick_done = threading.Event()
    ran: list[str] = []

    def body(name: str) -> None:
        if name == "blocks":
            release.wait(10)
        ran.append(name)
        if len(ran) == 3 and "blocks" not in ran:
            quick_done.set()

    try:
        pool.submit_all(body, ["blocks", "quick_1", "quick_2", "quick_3"])
        assert quick_done.wait(10)  # while "blocks" still holds its thread
    finally:
        release.set()
        pool.shutdown()


def test_a_stand_in_serves_the_queue_while_every_thread_is_stuck() -> None:
    pool = PollWorkers("test-poll", 1)
    release = threading.Event()
    stuck = threading.Event()
    served = threading.Event()

    def body(name: str) -> None:
        if name == "stuck":
            stuck.set()
            release.wait(10)
        else:
            served.set()

    try:
        pool.submit_all(body, ["stuck"])
        assert stuck.wait(10)
        pool.submit_all(body, ["next"])
        assert not served.wait(0.2)  # the only thread is stuck
        pool.add_stand_in()
        assert served.wait(10)
    finally:
        release.set()
        pool.shutdown()
