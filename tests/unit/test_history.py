"""The master's telemetry history: one point per step, bounded to the last hour, each figure a mean,
served by `GET /v1/nodes/<node>/history` and `GET /v1/members?history=1` (the real engine and app)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskorg.master.api import create_app
from taskorg.master.history import History, Point, figures
from taskorg.protocol import Disk, Telemetry
from tickharness import TickHarness

HEADERS = {"Authorization": "Bearer secret"}
GiB = 1024 ** 3


def sample(cpu: float = 10.0, used_gib: int = 1, disk_used: int = 50, temperature: float | None = 40.0) -> Telemetry:
    return Telemetry(cpu_percent=cpu, memory_total=4 * GiB, memory_available=(4 - used_gib) * GiB,
                     temperatures={"cpu": temperature, "board": 30.0} if temperature is not None else {},
                     disk=Disk(mount="/", total=100, used=disk_used, percent=float(disk_used)),
                     docker_disk=Disk(mount="/var", total=100, used=99, percent=99.0))


def test_figures_are_percentages_the_state_disk_and_the_hottest_sensor() -> None:
    assert figures(sample(cpu=12.5, used_gib=3, disk_used=75)) == {"cpu": 12.5, "memory": 75.0, "disk": 75.0,
                                                                  "temperature": 40.0}
    bare = figures(Telemetry())
    assert (bare["memory"], bare["disk"], bare["temperature"]) == (None, None, None)


def test_reports_within_a_step_are_averaged_into_one_point() -> None:
    history = History(step=10, span=60)
    history.add("node1", sample(cpu=10), now=1000.0)
    history.add("node1", sample(cpu=30, temperature=None), now=1009.9)
    [point] = history.points("node1", now=1010.0)
    assert point == Point(time=1000.0, cpu=20.0, memory=25.0, disk=50.0, temperature=40.0)


def test_the_ring_keeps_one_span_and_the_oldest_points_go_first() -> None:
    history = History(step=10, span=60)  # six points
    for n in range(20):
        history.add("node1", sample(cpu=n), now=1000.0 + 10 * n)
    points = history.points("node1", now=1000.0 + 10 * 19)
    assert [p.cpu for p in points] == [14.0, 15.0, 16.0, 17.0, 18.0, 19.0]
    assert [p.time for p in points] == sorted(p.time for p in points)
    assert len(history._rings["node1"]) == 6 - 1  # bounded: the ring plus the step being filled


def test_a_silent_node_ages_out_and_is_forgotten() -> None:
    history = History(step=10, span=60)
    history.add("gone", sample(), now=1000.0)
    history.add("node1", sample(), now=1030.0)
    assert len(history.points("gone", now=1030.0)) == 1
    assert history.points("gone", now=1070.0) == []  # older than the span: not shown
    history.add("node1", sample(), now=1070.0)  # the next step forgets it altogether
    assert history.nodes() == ["node1"]


def test_a_report_from_before_the_current_step_is_dropped() -> None:
    history = History(step=10, span=60)
    history.add("node1", sample(cpu=50), now=1020.0)
    history.add("node1", sample(cpu=0), now=1005.0)  # the wall clock stepped back
    assert [p.cpu for p in history.points("node1", now=1021.0)] == [50.0]


def test_a_bad_step_or_span_is_refused_with_both_named() -> None:
    with pytest.raises(ValueError, match="step 0.*span 60"):
        History(step=0, span=60)
    with pytest.raises(ValueError, match="step 10.*span 5"):
        History(step=10, span=5)


def test_reports_feed_the_history_route(harness: TickHarness) -> None:
    for step in range(3):
        harness.now += 10
        harness.engine.on_report("node2", [], sample(cpu=10.0 * step))
    app = create_app(harness.engine).test_client()
    answer = app.get("/v1/nodes/node2/history", headers=HEADERS).get_json()
    assert (answer["node"], answer["step"], answer["span"]) == ("node2", 10.0, 3600.0)
    assert [p["cpu"] for p in answer["points"]][-3:] == [0.0, 10.0, 20.0]
    assert set(answer["points"][-1]) == {"time", "cpu", "memory", "disk", "temperature"}


def test_members_carry_their_history_only_when_asked(harness: TickHarness) -> None:
    harness.engine.on_report("node1", [], sample())
    app = create_app(harness.engine).test_client()
    plain = app.get("/v1/members", headers=HEADERS).get_json()["members"]
    assert all("history" not in m for m in plain)
    rich = app.get("/v1/members?history=1", headers=HEADERS).get_json()["members"]
    assert {m["node"]: m["history"]["node"] for m in rich} == {"node1": "node1", "node2": "node2"}
    assert rich[0]["history"]["points"][-1]["disk"] == 50.0


def test_bad_history_requests_get_errors_that_name_the_problem(harness: TickHarness) -> None:
    app = create_app(harness.engine).test_client()
    missing = app.get("/v1/nodes/node9/history", headers=HEADERS)
    assert missing.status_code == 404 and "node9" in missing.get_json()["error"]
    assert "node1, node2" in missing.get_json()["error"]
    bad = app.get("/v1/members?history=maybe", headers=HEADERS)
    assert bad.status_code == 400 and "'history'" in bad.get_json()["error"]


def test_the_step_is_a_setting_from_one_to_six_hundred_seconds(tmp_path: Path) -> None:
    from taskorg.config import ConfigError, load_config

    config = load_config(overrides={"state_dir": str(tmp_path), "telemetry_history_step": 2,
                                    "report_resync_interval": 1}, environ={})
    assert config.telemetry_history_step == 2
    # Each point is the mean of the reports within its step: a resync longer than half a step is refused.
    with pytest.raises(ConfigError, match=r"'report_resync_interval': .* half of 'telemetry_history_step' \(2"):
        load_config(overrides={"state_dir": str(tmp_path), "telemetry_history_step": 2}, environ={})
    for bad in (0.5, 601):
        with pytest.raises(ConfigError, match=rf"'telemetry_history_step': seconds from 1 to 600, got {bad}"):
            load_config(overrides={"state_dir": str(tmp_path), "telemetry_history_step": bad}, environ={})
