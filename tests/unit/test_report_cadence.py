"""When the slave reports (taskorg/slave/cadence.py, pure), and the reporter loop that follows it.

At once at start; a change after the 50 ms coalescing window, a burst of
changes as one report; a change during a report as another report after it;
without changes a resync every `report_resync_interval` after the last
delivery; an undelivered report tried again after `report_interval`. The
reporter asks for a report when its runner's change feed says so and when a
command raises the epoch fence (a new master), and an idle one sends about
one report per resync. The master side: a container missing within its grace
is looked at again when the grace ends; the alerts' telemetry freshness
scales with the resync.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taskorg.config import ConfigError, load_config
from taskorg.master.alerting import FRESH_TELEMETRY_MIN, fresh_telemetry
from taskorg.master.reconcile import RUNNING_GRACE, START_GRACE, Listing, reconcile
from taskorg.master.relist import Relister
from taskorg.master.state import Instance
from taskorg.metrics import slave as slave_metrics
from taskorg.protocol import StartOrder
from taskorg.slave.cadence import COALESCE, Cadence
from taskorg.slave.fence import EpochFence
from taskorg.slave.reporter import Reporter
from taskorg.slave.standin import StandInRunner
from taskorg.spec import TaskSpec

# ---- the cadence, pure -----------------------------------------------------------------------


def test_the_first_report_is_at_once_then_one_per_resync() -> None:
    cadence = Cadence(resync=5.0, retry=1.0)
    assert cadence.due() == 0.0
    assert cadence.start(100.0) == "resync"
    cadence.done(100.2, delivered=True)
    assert cadence.due() == pytest.approx(105.2)  # counted from the delivery
    assert cadence.start(105.2) == "resync"
    cadence.done(105.3, delivered=True)
    assert cadence.due() == pytest.approx(110.3)


def test_a_change_is_reported_after_the_coalescing_window_and_a_burst_is_one_report() -> None:
    cadence = Cadence(resync=5.0, retry=1.0)
    cadence.start(100.0)
    cadence.done(100.1, delivered=True)
    cadence.changed(101.0)  # die
    cadence.changed(101.02)  # destroy, same burst: does not push the report back
    cadence.changed(101.04)
    assert cadence.due() == pytest.approx(101.0 + COALESCE)
    assert cadence.start(101.0 + COALESCE) == "change"
    cadence.done(101.1, delivered=True)
    assert cadence.due() == pytest.approx(106.1)  # nothing waits: the next resync


def test_a_change_during_a_report_makes_another_report_after_it() -> None:
    cadence = Cadence(resync=5.0, retry=1.0)
    cadence.changed(100.0)
    assert cadence.start(100.05) == "change"
    cadence.changed(100.07)  # after the listing began: not in that report
    cadence.done(100.2, delivered=True)
    assert cadence.due() == pytest.approx(100.07 + COALESCE)
    assert cadence.start(100.2) == "change"


def test_an_undelivered_report_is_tried_again_after_the_retry_interval() -> None:
    cadence = Cadence(resync=5.0, retry=1.0)
    cadence.changed(100.0)
    cadence.start(100.05)
    cadence.done(100.1, delivered=False)  # a failover: the master is gone
    assert cadence.due() == pytest.approx(101.1)
    assert cadence.start(101.1) == "resync"
    cadence.done(101.2, delivered=False)
    assert cadence.due() == pytest.approx(102.2)
    cadence.done(102.3, delivered=True)
    assert cadence.due() == pytest.approx(107.3)


def test_a_change_waits_for_no_resync() -> None:
    cadence = Cadence(resync=600.0, retry=1.0)
    cadence.start(0.0)
    cadence.done(0.0, delivered=True)
    cadence.changed(3.0)
    assert cadence.due() == pytest.approx(3.0 + COALESCE)


# ---- settings --------------------------------------------------------------------------------

def load(**overrides: Any) -> Any:
    return load_config(overrides=overrides, environ={})


def test_report_settings_are_checked() -> None:
    config = load()
    assert (config.report_resync_interval, config.report_interval) == (5.0, 1.0)
    assert load(report_resync_interval=0.2, report_interval=0.1).report_resync_interval == 0.2
    with pytest.raises(ConfigError, match="'report_resync_interval': seconds between full reports, from 0.05"):
        load(report_resync_interval=0)
    with pytest.raises(ConfigError, match=r"half of 'telemetry_history_step' \(10"):
        load(report_resync_interval=6)
    assert load(report_resync_interval=30, telemetry_history_step=60).report_resync_interval == 30
    with pytest.raises(ConfigError, match="'report_interval': seconds before an undelivered report is tried again"):
        load(report_interval=0.01)


def test_alerts_count_telemetry_fresh_for_three_resyncs_and_never_under_ten_seconds() -> None:
    assert fresh_telemetry(load()) == 15.0
    assert fresh_telemetry(load(report_resync_interval=1)) == FRESH_TELEMETRY_MIN
    assert fresh_telemetry(load(report_resync_interval=30, telemetry_history_step=60)) == 90.0


# ---- the master: a missing container is looked at again when its grace ends --------------------

NOW = 1_000_000.0


def running(updated: float, status: str = "running") -> Instance:
    return Instance(task_id="t-0000aaaa", idx=0, status=status, node="node1", attempt=1, container_id="c1",
                    updated_at=updated)


def recheck_of(inst: Instance) -> float | None:
    result = reconcile(Listing("node1", [], complete=True), {inst.key: inst}, lambda i: TaskSpec(name="t",
                       image="busybox"), set(), {}, NOW)
    return result.recheck


def test_a_missing_container_within_its_grace_asks_for_a_look_when_the_grace_ends() -> None:
    assert recheck_of(running(NOW - 1.0)) == pytest.approx(RUNNING_GRACE - 1.0)
    assert recheck_of(running(NOW - 2.0, "starting")) == pytest.approx(START_GRACE - 2.0)
    assert recheck_of(running(NOW - RUNNING_GRACE - 1)) is None  # lost now: nothing to wait for


def test_the_relister_keeps_the_earliest_moment_per_node() -> None:
    listed: list[str] = []
    done = threading.Event()

    def relist(node: str) -> None:
        listed.append(node)
        if len(listed) == 2:
            done.set()

    relister = Relister(relist)
    relister.at("node1", 30.0)
    relister.at("node1", 0.05)  # earlier: replaces it
    relister.at("node1", 10.0)  # later: the earlier one stands
    relister.at("node2", 0.1)
    assert set(relister.planned()) == {"node1", "node2"} and relister.planned()["node1"] < 1
    assert done.wait(5)
    time.sleep(0.2)
    assert sorted(listed) == ["node1", "node2"] and relister.planned() == {}
    relister.at("node3", 30)
    relister.cancel()
    assert relister.planned() == {}


# ---- the reporter loop -------------------------------------------------------------------------

class Recorder:
    """Stands for report_once: records when it was called and answers as told."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.delivered = True

    def __call__(self) -> bool:
        self.times.append(time.monotonic())
        return self.delivered


def reporter(tmp_path: Path, runner: StandInRunner, **settings: Any) -> tuple[Reporter, Recorder]:
    config = load(state_dir=str(tmp_path), **settings)
    made = Reporter(config, "s" * 32, runner, EpochFence(tmp_path / "epoch"))
    recorder = Recorder()
    made.report_once = recorder  # type: ignore[method-assign]
    return made, recorder


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def order() -> StartOrder:
    return StartOrder(epoch=1, task_id="t-0000aaaa", index=0, attempt=1, job="j-0000aaaa",
                      spec=TaskSpec(name="t", image="busybox"))


def test_an_idle_reporter_resyncs_and_a_change_is_reported_at_once(tmp_path: Path) -> None:
    runner = StandInRunner("unit", "node1")
    made, recorder = reporter(tmp_path, runner, report_resync_interval=0.5)
    made.start()
    try:
        wait_for(lambda: len(recorder.times) >= 2)  # the first at once, and one after subscribing
        time.sleep(1.6)
        idle = [b - a for a, b in zip(recorder.times[1:], recorder.times[2:])]
        assert len(idle) in (2, 3) and all(0.45 <= gap <= 0.7 for gap in idle), idle
        state = runner.start(order())
        count, asked = len(recorder.times), time.monotonic()
        runner.finish(state["container_id"], exit_code=1)  # the feed says it died
        wait_for(lambda: len(recorder.times) > count)
        assert recorder.times[count] - asked < 0.3  # within the coalescing window, not at the resync
    finally:
        made.stop()
        runner.close()


def test_a_raised_fence_means_a_new_master_and_a_report_at_once(tmp_path: Path) -> None:
    runner = StandInRunner("unit", "node1")
    made, recorder = reporter(tmp_path, runner, report_resync_interval=5)
    made.start()
    try:
        wait_for(lambda: len(recorder.times) >= 2)
        time.sleep(0.2)
        count, asked = len(recorder.times), time.monotonic()
        made.fence.check(4)  # POST /v1/epoch from the new master's activation
        wait_for(lambda: len(recorder.times) > count, timeout=1.0)
        assert recorder.times[count] - asked < 0.3
        count = len(recorder.times)
        made.fence.check(4)  # the same epoch again: no news
        time.sleep(0.3)
        assert len(recorder.times) == count
    finally:
        made.stop()
        runner.close()


def test_an_undelivered_report_is_tried_again_after_report_interval(tmp_path: Path) -> None:
    runner = StandInRunner("unit", "node1")
    made, recorder = reporter(tmp_path, runner, report_resync_interval=5, report_interval=0.2)
    recorder.delivered = False
    failed = slave_metrics.REPORTS.labels("resync", "failed")._value.get()
    made.start()
    try:
        wait_for(lambda: len(recorder.times) >= 4, timeout=3)
        gaps = [b - a for a, b in zip(recorder.times[1:], recorder.times[2:])]
        assert all(0.15 <= gap <= 0.5 for gap in gaps), gaps
        assert slave_metrics.REPORTS.labels("resync", "failed")._value.get() > failed
    finally:
        made.stop()
        runner.close()
