"""One tick's decisions (taskorg/master/plan.py), as a pure function of records, membership and a clock."""

from __future__ import annotations

from taskorg.master.placement import NodeView
from taskorg.master.plan import Membership, membership_events, node_views, plan, reserve
from taskorg.master.state import HistoryEvent, Instance
from taskorg.spec import TaskSpec

NOW = 1000.0
GiB = 1 << 30
SPEC = TaskSpec(name="t", image="busybox")
BOTH = Membership(frozenset({"node1", "node2"}))


def inst(status: str = "pending", node: str | None = None, attempt: int = 0, not_before: float | None = None,
         task: str = "t-1", index: int = 0) -> Instance:
    return Instance(task_id=task, idx=index, status=status, node=node, attempt=attempt, not_before=not_before,
                    job="j-1", spec="{}")


def views() -> list[NodeView]:
    return [NodeView(f"node{n}", f"127.0.9.{n}", {}, cpus=2, memory=GiB) for n in (1, 2)]


def test_membership_changes_become_node_events_after_the_first_look() -> None:
    assert membership_events(None, BOTH, NOW) == []
    after = Membership(frozenset({"node2", "node3"}), frozenset({"node2"}))
    events = membership_events(BOTH, after, NOW)
    assert [(e.event, e.node) for e in events if isinstance(e, HistoryEvent)] == [
        ("node_joined", "node3"), ("node_dead", "node1"), ("node_drained", "node2")]


def test_a_pending_instance_is_placed_with_its_next_attempt() -> None:
    decided = plan([inst()], BOTH, {}, lambda i: SPEC, views, NOW)
    placed = decided.placements[0].instance
    assert (placed.status, placed.attempt, placed.updated_at) == ("starting", 1, NOW)
    assert placed.node in ("node1", "node2") and decided.placements[0].address.startswith("127.0.9.")


def test_nodes_are_looked_at_only_when_something_is_placed() -> None:
    def no_nodes() -> list[NodeView]:
        raise AssertionError("node views read without anything to place")

    assert plan([inst(not_before=NOW + 5)], BOTH, {}, lambda i: SPEC, no_nodes, NOW).records == []


def test_an_instance_on_a_dead_or_draining_node_is_placed_again() -> None:
    draining = Membership(frozenset({"node1", "node2"}), frozenset({"node1"}))
    placeable = lambda: views()[1:]  # noqa: E731  (the engine's views hold only active nodes)
    decided = plan([inst("running", node="node1", attempt=1)], draining, {}, lambda i: SPEC, placeable, NOW)
    rescheduled = [r for r in decided.records if isinstance(r, HistoryEvent)][0]
    assert rescheduled.detail == "node node1 drained: placing again"
    assert decided.placements[0].instance.node == "node2"


def test_a_waiting_instance_is_released_or_failed_by_its_dependencies() -> None:
    after_a = TaskSpec(name="b", image="busybox", after=("a",))
    waiting = inst("waiting")
    assert plan([waiting], BOTH, {("j-1", "a"): "running"}, lambda i: after_a, views, NOW).records == []
    released = plan([waiting], BOTH, {("j-1", "a"): "succeeded"}, lambda i: after_a, views, NOW).records
    assert [r.status for r in released if isinstance(r, Instance)] == ["pending"]
    failed = plan([waiting], BOTH, {("j-1", "a"): "failed"}, lambda i: after_a, views, NOW).records
    assert failed[0].status == "failed" and failed[0].error == "dependency a failed"  # type: ignore[union-attr]


def test_a_task_that_fits_nowhere_gets_a_reason() -> None:
    huge = TaskSpec(name="t", image="busybox", resources=type(SPEC.resources)(cpus=64))
    decided = plan([inst()], BOTH, {}, lambda i: huge, views, NOW)
    assert decided.placements == [] and decided.reasons["t-1"].startswith("no node fits")


def test_node_views_want_the_telemetry_they_lack_and_count_reservations() -> None:
    members = [{"node": "node1", "address": "a1"}, {"node": "node2", "address": "a2"}]
    found, wanted = node_views(members, {"node1": {"cpu_count": 4, "memory_total": GiB}})
    assert list(found) == ["node1"] and wanted == ["node2"]
    reserve(found, [("t-1", "node1"), ("t-1", "node9")], {"t-1": SPEC})
    assert found["node1"].tasks["t-1"] == 1
