"""Periodic jobs on plain threads: the part of apscheduler's BackgroundScheduler taskorg used.

apscheduler cost a service about 2.5 MiB of heap in imports (asyncio, concurrent.futures,
multiprocessing, tzlocal, zoneinfo) for what the node, DNS
and slave services use of it: "run this every N seconds in the background, one
run at a time, skipping runs that would overlap". Same call shape, so a service
switches by its import line (issue 14, memory).

Semantics kept from apscheduler's interval trigger with `max_instances=1,
coalesce=True`: runs fall on a fixed grid (the time the job was added plus
whole intervals; `next_run_time` moves the first run); a run due while the
previous one still runs is skipped, and the next one starts at the next grid
point; an exception is logged and the job keeps its schedule. Each job has a
thread of its own, so a slow job never delays another (apscheduler ran jobs in
a pool of up to ten threads).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime
from typing import Any, Callable

from taskorg.logs import get_logger

_log = get_logger("intervals")


class _Job:
    def __init__(self, func: Callable[..., Any], seconds: float, args: tuple[Any, ...], kwargs: dict[str, Any],
                 name: str, first: float | None, log: logging.Logger) -> None:
        if seconds <= 0:
            raise ValueError(f"interval of job {name} must be positive, got {seconds!r}")
        self.func, self.seconds, self.args, self.kwargs, self.name = func, seconds, args, kwargs, name
        # The grid: the first run (`next_run_time`) or the time the job was added, plus whole intervals.
        self.anchor = first if first is not None else time.monotonic()
        self.due = self.anchor if first is not None else self.anchor + seconds
        self.log = log
        self.thread: threading.Thread | None = None

    def next_after(self, now: float) -> float:
        """The first grid point after `now` (runs that fell due meanwhile are skipped, not caught up)."""
        return self.anchor + (math.floor((now - self.anchor) / self.seconds) + 1) * self.seconds

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(max(0.0, self.due - time.monotonic())):
            try:
                self.func(*self.args, **self.kwargs)
            except Exception:
                self.log.exception("periodic job raised", extra={"job": self.name})
            self.due = self.next_after(time.monotonic())


class BackgroundScheduler:
    """Interval jobs, each on a thread of its own; `add_job` takes apscheduler's arguments."""

    def __init__(self, daemon: bool = True, timezone: Any = None, logger: logging.Logger | None = None) -> None:
        del timezone  # intervals only: no wall-clock zone to mind
        self.daemon = daemon
        self.log = logger or _log
        self.jobs: list[_Job] = []
        self._stop = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def add_job(self, func: Callable[..., Any], trigger: str = "interval", args: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None, seconds: float = 0, id: str | None = None,
                max_instances: int = 1, coalesce: bool = True, misfire_grace_time: Any = None,
                next_run_time: datetime | None = None) -> _Job:
        del misfire_grace_time  # a late run still runs (one thread per job: only a slow job makes it late)
        if trigger != "interval" or max_instances != 1 or not coalesce:
            raise ValueError("only interval jobs with max_instances=1 and coalesce=True are supported")
        first = None
        if next_run_time is not None:
            first = time.monotonic() + max(0.0, next_run_time.timestamp() - time.time())
        job = _Job(func, float(seconds), tuple(args), dict(kwargs or {}),
                   id or getattr(func, "__qualname__", repr(func)), first, self.log)
        with self._lock:
            self.jobs.append(job)
            if self._started:
                self._launch(job)
        return job

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("scheduler already started")
            self._started = True
            for job in self.jobs:
                self._launch(job)

    def shutdown(self, wait: bool = True) -> None:
        """Stop every job; with `wait`, until the runs in progress have returned."""
        self._stop.set()
        if wait:
            for job in self.jobs:
                if job.thread is not None and job.thread is not threading.current_thread():
                    job.thread.join()

    def _launch(self, job: _Job) -> None:
        job.thread = threading.Thread(target=job.loop, args=(self._stop,), name=f"every-{job.name}",
                                      daemon=self.daemon)
        job.thread.start()
