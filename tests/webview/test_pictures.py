"""The pictures' pure code: the layered graph layout, the cluster picture, the failover timeline, jobs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskorg.webview import jobs, layout, timeline, topology

# ---- layered layout ------------------------------------------------------------------------------


def test_layers_follow_the_longest_path() -> None:
    edges = [("prepare", "compute"), ("compute", "report"), ("prepare", "report"), ("prepare", "side")]
    assert layout.assign_layers(["prepare", "compute", "report", "side"], edges) == {
        "prepare": 0, "compute": 1, "side": 1, "report": 2}


def test_unknown_names_and_self_loops_are_ignored() -> None:
    assert layout.assign_layers(["a", "b"], [("ghost", "a"), ("b", "b"), ("a", "b"), ("a", "b")]) == {"a": 0, "b": 1}


def test_a_cycle_is_refused_by_name() -> None:
    with pytest.raises(layout.CycleError, match="b, c"):
        layout.assign_layers(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])


def test_an_edge_that_skips_a_layer_gets_a_virtual_point_and_misses_the_box_between() -> None:
    drawing = layout.draw(["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")])
    layers = layout.order_layers(["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")])
    assert [len(items) for items in layers] == [1, 2, 1]  # b and the point a->c passes
    skip = next(r for r in drawing.routes if (r.source, r.target) == ("a", "c"))
    assert len(skip.points) == 4  # out of a, across the virtual slot beside b (both its edges), into c
    b = drawing.boxes["b"]
    (x1, y1), (x2, y2) = skip.points[1:3]
    assert (x1, x2) == (b.x, b.x + b.w) and y1 == y2
    assert not b.y <= y1 <= b.y + b.h  # the long edge passes beside b, not through it


def test_barycentre_ordering_removes_a_crossing() -> None:
    # Given in a crossing order: a1 feeds b2, a2 feeds b1.
    layers = layout.order_layers(["a1", "a2", "b1", "b2"], [("a1", "b2"), ("a2", "b1")])
    positions = {item: slot for items in layers for slot, item in enumerate(items)}
    assert (positions["a1"] < positions["a2"]) == (positions["b2"] < positions["b1"])


@pytest.mark.parametrize("horizontal", [True, False])
def test_boxes_do_not_overlap_and_fit_the_drawing(horizontal: bool) -> None:
    names = [f"t{n}" for n in range(7)]
    edges = [("t0", "t1"), ("t0", "t2"), ("t0", "t3"), ("t1", "t4"), ("t2", "t4"), ("t3", "t5"), ("t4", "t6"),
             ("t0", "t6")]
    drawing = layout.draw(names, edges, layout.Geometry(horizontal=horizontal))
    boxes = list(drawing.boxes.values())
    assert len(boxes) == 7
    for box in boxes:
        assert 0 <= box.x and box.x + box.w <= drawing.width and 0 <= box.y and box.y + box.h <= drawing.height
    for i, one in enumerate(boxes):
        for other in boxes[i + 1:]:
            apart = (one.x + one.w <= other.x or other.x + other.w <= one.x
                     or one.y + one.h <= other.y or other.y + other.h <= one.y)
            assert apart, (one, other)
    # Every edge runs forward along the layer direction.
    for route in drawing.routes:
        along = [x if horizontal else y for x, y in route.points]
        assert along == sorted(along)
        assert re.fullmatch(r"M[\d.]+,[\d.]+( C[\d., ]+)+", route.path(horizontal))


def test_an_empty_job_draws_nothing() -> None:
    drawing = layout.draw([], [])
    assert drawing.boxes == {} and drawing.routes == []


# ---- cluster picture --------------------------------------------------------------------------------

def _members() -> list[dict[str, Any]]:
    return [{"node": "node1", "number": 1, "address": "10.0.0.2", "alive": False, "last_seen_ago": 12.0},
            {"node": "node2", "number": 2, "address": "10.0.0.3", "alive": True, "last_seen_ago": 0.1},
            {"node": "node3", "number": 3, "address": "10.0.0.4", "alive": True, "last_seen_ago": 0.7,
             "state": "draining"}]


def test_picture_says_who_is_who_and_who_reaches_whom() -> None:
    status = {"seq": 140, "replicas": {"node3": 37}}
    picture = topology.build({"members": _members()}, status, _members(), "10.0.0.1", "10.0.0.4", 5, "node2")
    assert [(m.key, m.kind, m.health) for m in picture.machines] == [
        ("dns", "witness", "ok"), ("node2", "master", "ok"), ("node1", "standby", "down"),
        ("node3", "standby", "ok")]
    assert picture.machine("node3").here and picture.machine("node3").draining
    links = {(l.source, l.target, l.kind): (l.state, l.label) for l in picture.links}
    assert links[("node1", "dns", "heartbeat")] == ("down", "last heartbeat 12 s ago")
    assert links[("node3", "dns", "heartbeat")][0] == "late"
    assert links[("node2", "dns", "heartbeat")][0] == "ok"
    assert links[("node2", "node3", "replication")] == ("late", "replica seq 37, 103 behind")
    assert links[("node2", "node1", "replication")] == ("down", "no replication stream")
    assert "epoch 5" in " ".join(picture.machine("dns").lines)
    # A standby a few changes behind a busy master is normal: said in words, not flagged.
    busy = topology.build({"members": _members()}, {"seq": 40, "replicas": {"node3": 37}}, _members(), "10.0.0.1",
                          None, 5, "node2")
    assert next(l for l in busy.links if l.target == "node3").state == "ok"


def test_a_node_outside_the_standby_set_is_a_spare_without_a_stream() -> None:
    status = {"seq": 40, "replicas": {"node3": 40}, "standbys": ["node3"]}
    picture = topology.build({"members": _members()}, status, _members(), "10.0.0.1", None, 5, "node2")
    assert [(m.key, m.kind) for m in picture.machines[1:]] == [("node2", "master"), ("node1", "spare"),
                                                               ("node3", "standby")]
    assert "spare: no replica stream" in picture.machine("node1").lines
    assert {(l.source, l.target) for l in picture.links if l.kind == "replication"} == {("node2", "node3")}


def test_picture_names_dns_voters_replicas_and_the_arbiter() -> None:
    dns = {"members": _members(), "arbiter": "10.0.0.3",
           "dns_servers": {"voters": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "reachable": ["10.0.0.1", "10.0.0.3"],
                           "leader": "10.0.0.3"}}
    picture = topology.build(dns, {"seq": 1, "replicas": {}}, _members(), "10.0.0.1", None, 7, "node2")
    assert {m.key: m.dns for m in picture.machines} == {"dns": "voter", "node1": "voter", "node2": "voter",
                                                       "node3": "replica"}
    assert picture.machine("dns").lines == ("dnsmasq · DNS voter", "epoch 7")
    assert picture.machine("node2").lines[-1] == "DNS voter · arbiter"
    assert picture.machine("node1").lines[-1] == "DNS voter · unreachable"
    assert picture.machine("node3").lines[-1] == "DNS replica"
    assert picture.dns_summary == "DNS servers: 3 voters (2 reachable), 1 replica; arbiter 10.0.0.3"
    # An older DNS service that does not describe its group: the witness is the arbiter, as before.
    old = topology.build({"members": _members()}, None, _members(), "10.0.0.1", None, 7, "node2")
    assert old.machine("dns").lines[1] == "arbiter · epoch 7" and old.dns_summary == ""


def test_picture_without_the_dns_service_or_the_master_says_what_is_unknown() -> None:
    picture = topology.build(None, None, _members(), "10.0.0.1", None, None, None)
    assert picture.machine("dns").health == "down"
    assert all(m.health == "unknown" for m in picture.machines[1:])
    assert all(l.state == "unknown" for l in picture.links)
    assert any("DNS node does not answer" in note for note in picture.notes)


@pytest.mark.parametrize("wide", [True, False])
def test_picture_geometry_keeps_every_box_inside(wide: bool) -> None:
    picture = topology.build({"members": _members()}, {"seq": 1, "replicas": {}}, _members(), "10.0.0.1", None, 1,
                             "node2")
    drawing = topology.draw(picture, wide)
    assert len(drawing.spots) == 4 and len(drawing.strokes) == len(picture.links) == 5
    for spot in drawing.spots:
        assert 0 <= spot.x and spot.x + spot.w <= drawing.width and spot.y + spot.h <= drawing.height
    if not wide:
        assert drawing.width == topology.NARROW_W  # a phone-sized column, whatever the node count


def test_a_big_cluster_is_drawn_as_one_column_for_every_screen() -> None:
    small = topology.build({"members": _members()}, None, _members(), "10.0.0.1", None, 1, "node2")
    assert [d.wide for d in topology.drawings(small)] == [True, False]
    many = [{"node": f"node{n}", "number": n, "address": f"10.0.0.{n + 1}", "alive": True, "last_seen_ago": 0.1}
            for n in range(1, 9)]
    big = topology.build({"members": many}, None, many, "10.0.0.1", None, 1, "node1")
    (only,) = topology.drawings(big)
    assert only.everywhere and only.width == topology.NARROW_W and len(only.spots) == 9


# ---- failover timeline ------------------------------------------------------------------------------

def _event(n: int, at: float, kind: str, node: str | None = None, task: str | None = None,
           index: int | None = None, detail: str = "") -> dict[str, Any]:
    return {"id": n, "time": at, "kind": kind, "node": node, "task": task, "index": index, "name": task,
            "detail": detail}


FAILOVER = [_event(1, 900.0, "master_changed", "node1", detail="epoch 1"),
            _event(2, 950.0, "instance_running", "node1", "t-a", 0),
            _event(3, 1000.75, "master_changed", "node2", detail="epoch 2"),
            _event(4, 1001.0, "node_dead", "node1"),
            _event(5, 1001.01, "task_rescheduled", "node1", "t-a", 0),
            _event(6, 1001.02, "task_rescheduled", "node1", "t-b", 0),
            _event(7, 1001.5, "instance_running", "node3", "t-a", 0),
            _event(8, 1001.9, "instance_running", "node2", "t-b", 0)]


def test_timeline_of_a_failover_from_last_heartbeat_to_tasks_back() -> None:
    dns = [{"node": "node1", "alive": False, "last_seen_ago": 20.0}]
    line = timeline.build(FAILOVER, dns, now=1020.0)
    assert line is not None
    assert [(s.kind, round(s.offset, 2)) for s in line.steps] == [
        ("heard", 0.0), ("elected", 0.75), ("dead", 1.0), ("rescheduled", 1.01), ("back", 1.9)]
    assert (line.old_master, line.new_master, line.epoch, line.rescheduled, line.back) == ("node1", "node2", "2", 2, 2)
    assert line.summary == "node1 → node2: every task back 1.90 s after the last heartbeat."


def test_timeline_while_tasks_are_still_coming_back() -> None:
    line = timeline.build(FAILOVER[:7], None, now=1003.0)
    assert line is not None
    assert [s.kind for s in line.steps] == ["elected", "dead", "rescheduled", "back", "waiting"]
    assert line.steps[3].title == "1 of 2 back running"
    assert "1 of 2 moved tasks back so far" in line.summary


def test_timeline_ignores_a_running_before_the_move_and_a_returned_node() -> None:
    events = FAILOVER[:5] + [_event(6, 1001.2, "instance_running", "node3", "t-a", 0)]
    # node1 is alive again: its last heartbeat is recent, so it says nothing about the failover.
    line = timeline.build(events, [{"node": "node1", "alive": True, "last_seen_ago": 0.1}], now=1030.0)
    assert line is not None and line.steps[0].kind == "elected" and line.back == 1


def test_timeline_of_a_first_election_or_none() -> None:
    line = timeline.build(FAILOVER[:2], None, now=1000.0)
    assert line is not None and "no node died" in line.summary and len(line.steps) == 1
    assert timeline.build(FAILOVER[1:2], None, now=1000.0) is None


def test_windows_read_back_from_the_end_in_pages() -> None:
    assert timeline.windows(0) == []
    assert timeline.windows(120) == [0]
    assert timeline.windows(1700) == [1200, 700, 200, 0]
    assert timeline.windows(10_000) == [9500, 9000, 8500, 8000]


@pytest.mark.parametrize("wide", [True, False])
def test_timeline_geometry_puts_ticks_in_time_order(wide: bool) -> None:
    line = timeline.build(FAILOVER, [{"node": "node1", "alive": False, "last_seen_ago": 20.0}], now=1020.0)
    assert line is not None
    drawing = timeline.draw(line, wide)
    ticks = [m.tick_x if wide else m.tick_y for m in drawing.marks]
    assert ticks == sorted(ticks) and ticks[0] < ticks[-1]
    labels = [m.label_x if wide else m.label_y for m in drawing.marks]
    gaps = {round(b - a, 3) for a, b in zip(labels, labels[1:])}
    assert len(gaps) == 1  # labels evenly spaced, however close the moments


# ---- jobs -------------------------------------------------------------------------------------------

def _summary(job: str, name: str, status: str, created: float) -> dict[str, Any]:
    return {"id": f"t-{name}", "job": job, "job_name": job.upper(), "name": name, "status": status,
            "created_at": created, "updated_at": created + 5, "instances": [{"index": 0, "status": status}]}


def test_job_rows_group_count_and_page() -> None:
    summaries = [_summary("j-1", "a", "succeeded", 10), _summary("j-1", "b", "running", 11),
                 _summary("j-2", "c", "failed", 20), _summary("j-3", "d", "cancelled", 30)]
    rows = jobs.job_rows(summaries, limit=2)
    assert [(r["id"], r["status"]) for r in rows] == [("j-3", "cancelled"), ("j-2", "failed")]  # as `job ls` says
    older = jobs.job_rows(summaries, limit=2, before=rows[-1]["submitted_at"])
    assert [(r["id"], r["status"], r["tasks"], r["submitted_at"], r["updated_at"]) for r in older] == [
        ("j-1", "running", 2, 10, 16)]
    assert list(older[0]["counts"]) == ["running", "succeeded"]


def test_after_cache_asks_once_per_task() -> None:
    asked: list[str] = []

    def fetch(task_id: str) -> dict[str, Any]:
        asked.append(task_id)
        return {"spec": {"after": "prepare" if task_id == "t-2" else ["a", "b"]}}

    cache = jobs.AfterCache(size=2)
    assert cache.get("t-1", fetch) == ("a", "b") and cache.get("t-2", fetch) == ("prepare",)
    assert cache.get("t-1", fetch) == ("a", "b") and asked == ["t-1", "t-2"]
    cache.get("t-3", fetch)  # evicts the least recently used, t-2
    cache.get("t-2", fetch)
    assert asked == ["t-1", "t-2", "t-3", "t-2"]


def test_graph_of_a_job_and_the_progress_of_a_parallel_task() -> None:
    tasks = [jobs.GraphTask("t-1", "sample", "running", ("succeeded", "running", "succeeded"), ()),
             jobs.GraphTask("t-2", "merge", "pending", ("waiting",), ("sample",))]
    graph = jobs.graph(tasks)
    assert [(r.source, r.target) for r in graph.wide.routes] == [("sample", "merge")]
    assert graph.wide.boxes["merge"].layer == 1 and graph.narrow.boxes["merge"].layer == 1
    assert tasks[0].progress == "running · 2/3 done" and tasks[1].progress == "pending"
