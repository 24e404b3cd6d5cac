"""A job run every few tens of milliseconds, or when it is due, on a thread of its own.

apscheduler suits the slow jobs (seconds apart). For the frequent ones (the
DNS service's tick, a node's heartbeat every 100 ms) each run went from
apscheduler's scheduler thread to a pool thread, with its date arithmetic:
two wake-ups and a GIL hand-off per run, a visible part of an idle service
(py-spy). One thread waiting on an event costs one wake-up per run.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from taskorg.logs import get_logger

log = get_logger("net")


def run_every(interval: float, job: Callable[[], None], name: str, stop: threading.Event) -> threading.Thread:
    """Start a daemon thread that calls `job` every `interval` seconds until `stop` is set.

    Runs never overlap, and missed beats are not made up for (a late loop runs
    once at once and goes on from there), as apscheduler's `max_instances=1,
    coalesce=True`. A run
    that raises is logged and the loop goes on."""

    def loop() -> None:
        due = time.monotonic()
        while not stop.is_set():
            try:
                job()
            except Exception:
                log.exception("periodic job failed", extra={"job": name})
            due = max(due + interval, time.monotonic())  # late: once at once, then on from now
            if stop.wait(max(0.0, due - time.monotonic())):
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def run_when_due(job: Callable[[], float], name: str, stop: threading.Event, wake: threading.Event,
                 retry: float = 0.05) -> threading.Thread:
    """Start a daemon thread that calls `job`, which returns the seconds until it is next due, and
    sleeps that long or until `wake` is set (set `wake` too when setting `stop`).

    For a job whose work is known in advance (deadlines) or announced (events):
    it wakes when there is something to do, not on a fixed beat. `wake` is
    cleared before each run, so an event during a run brings the next one at
    once and none is lost. A run that raises is logged and retried after `retry`."""

    def loop() -> None:
        while not stop.is_set():
            wake.clear()
            try:
                wait = job()
            except Exception:
                log.exception("periodic job failed", extra={"job": name})
                wait = retry
            wake.wait(max(0.0, wait))

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
