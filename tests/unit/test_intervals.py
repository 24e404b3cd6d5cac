"""taskorg.intervals: periodic jobs on a fixed grid, one run at a time, errors logged and survived."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from taskorg.intervals import BackgroundScheduler, _Job


def test_a_job_runs_every_interval_until_shutdown() -> None:
    runs: list[float] = []
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(lambda: runs.append(time.monotonic()), "interval", seconds=0.05, max_instances=1, coalesce=True)
    started = time.monotonic()
    scheduler.start()
    time.sleep(0.38)
    scheduler.shutdown(wait=True)
    count = len(runs)
    time.sleep(0.12)
    assert len(runs) == count  # nothing after shutdown
    assert 4 <= count <= 8
    assert runs[0] - started >= 0.04  # the first run is one interval after the job was added


def test_next_run_time_moves_the_first_run_and_args_are_passed() -> None:
    seen = threading.Event()
    got: list[str] = []
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_job(lambda word: (got.append(word), seen.set()), "interval", args=("hi",), seconds=60,
                      id="report", max_instances=1, coalesce=True, misfire_grace_time=None,
                      next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    assert seen.wait(2.0)
    scheduler.shutdown(wait=False)
    assert got == ["hi"]


def test_a_slow_run_skips_the_runs_it_overlaps_and_keeps_the_grid() -> None:
    job = _Job(lambda: None, 1.0, (), {}, "slow", None, None)  # type: ignore[arg-type]
    job.anchor = 100.0
    assert job.next_after(100.2) == 101.0
    assert job.next_after(103.5) == 104.0  # runs due at 102 and 103 were skipped, not caught up
    assert job.next_after(104.0) == 105.0


def test_an_exception_is_logged_and_the_job_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    scheduler = BackgroundScheduler()
    scheduler.add_job(flaky, "interval", seconds=0.03)
    with caplog.at_level("ERROR"):
        scheduler.start()
        time.sleep(0.2)
        scheduler.shutdown()
    assert len(calls) >= 3
    assert "periodic job raised" in caplog.text


def test_a_job_added_after_start_runs_too() -> None:
    seen = threading.Event()
    scheduler = BackgroundScheduler()
    scheduler.start()
    scheduler.add_job(seen.set, "interval", seconds=0.02)
    assert seen.wait(2.0)
    scheduler.shutdown()


def test_only_what_taskorg_uses_is_accepted() -> None:
    scheduler = BackgroundScheduler()
    with pytest.raises(ValueError):
        scheduler.add_job(lambda: None, "cron", seconds=1)
    with pytest.raises(ValueError):
        scheduler.add_job(lambda: None, "interval", seconds=1, max_instances=2)
