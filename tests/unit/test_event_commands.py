"""`taskorg events` (taskorg/cli/event_commands.py): filters, kinds named when wrong, and a follow that
resumes after the last id it showed when the master is gone for a while, showing each event once."""

from __future__ import annotations

from typing import Any

import pytest

from taskorg.cli.context import UsageError
from taskorg.cli.event_commands import EventFilter, event_line, follow_events, parse_kinds
from taskorg.client import ClusterUnavailable


def event(n: int, kind: str = "task_started", job: str = "j-1", task: str = "t-1") -> dict[str, Any]:
    return {"id": n, "time": 1796119200.0 + n, "kind": kind, "task": task, "index": 0, "job": job, "name": "web",
            "node": "node2", "detail": ""}


def test_filters_by_job_task_and_kind() -> None:
    events = [event(1), event(2, "task_failed"), event(3, job="j-2", task="t-2"), event(4, "node_dead", "", "")]
    assert [e["id"] for e in events if EventFilter(job="j-1")(e)] == [1, 2]
    assert [e["id"] for e in events if EventFilter(task="t-2")(e)] == [3]
    assert [e["id"] for e in events if EventFilter(kinds=parse_kinds(["task_failed,node_dead"]))(e)] == [2, 4]
    assert all(EventFilter()(e) for e in events)


def test_an_unknown_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(UsageError, match="'node_gone'.*node_dead"):
        parse_kinds(["node_gone"])
    assert parse_kinds(["instance_lost"]) == {"instance_lost"}


def test_a_line_says_what_happened_to_what_where() -> None:
    line = event_line(event(7))
    assert "#7" in line and "task_started" in line and "web (t-1/0)" in line and "on node2" in line


def test_a_follow_resumes_after_the_last_id_across_an_outage() -> None:
    class Cluster:
        def __init__(self) -> None:
            self.asked: list[int] = []
            self.calls = 0

        def events(self, since: int, wait: float) -> list[dict[str, Any]]:
            self.asked.append(since)
            self.calls += 1
            if self.calls in (2, 3):
                raise ClusterUnavailable("failover")
            return [event(n) for n in range(since + 1, min(since + 4, 10) + 1)]

    cluster, shown, now = Cluster(), [], [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def clock() -> float:
        now[0] += 0.1
        return now[0]

    code = follow_events(cluster, 0, lambda e: shown.append(e["id"]), EventFilter(), clock=clock, sleep=sleep,
                         until=5.0)
    assert code == 0
    assert shown == list(range(1, 11))
    assert cluster.asked[:4] == [0, 4, 4, 4]
