"""The loop that runs a job when it is due (taskorg.net.loops.run_when_due): the job's own delay is
kept, an event brings the next run at once and is never lost, a failing run is retried, stop ends it."""

from __future__ import annotations

import threading
import time

from taskorg.net.loops import run_when_due


def test_a_job_sleeps_as_long_as_it_says_and_an_event_wakes_it() -> None:
    runs: list[float] = []
    stop, wake = threading.Event(), threading.Event()

    def job() -> float:
        runs.append(time.monotonic())
        return 30.0  # nothing due for a long while

    thread = run_when_due(job, "test-due", stop, wake)
    try:
        time.sleep(0.2)
        assert len(runs) == 1
        woken = time.monotonic()
        wake.set()
        deadline = time.monotonic() + 5
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(runs) == 2 and runs[1] - woken < 0.5
    finally:
        stop.set()
        wake.set()
        thread.join(5)
    assert not thread.is_alive()


def test_an_event_during_a_run_brings_the_next_run_at_once() -> None:
    runs: list[float] = []
    stop, wake = threading.Event(), threading.Event()

    def job() -> float:
        runs.append(time.monotonic())
        if len(runs) == 1:
            wake.set()  # as a change applied while the tick held the lock
        return 30.0

    thread = run_when_due(job, "test-due", stop, wake)
    try:
        deadline = time.monotonic() + 5
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(runs) == 2 and runs[1] - runs[0] < 0.5
    finally:
        stop.set()
        wake.set()
        thread.join(5)


def test_a_failing_run_is_retried() -> None:
    runs: list[float] = []
    stop, wake = threading.Event(), threading.Event()

    def job() -> float:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise RuntimeError("boom")
        return 30.0

    thread = run_when_due(job, "test-due", stop, wake, retry=0.01)
    try:
        deadline = time.monotonic() + 5
        while len(runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(runs) == 3
    finally:
        stop.set()
        wake.set()
        thread.join(5)
