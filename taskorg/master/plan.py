"""One scheduling tick's decisions: pure logic, no I/O, the clock passed in.

Like a scheduler that returns a plan for the leader to commit: from the
instances that have something to do, the membership and the nodes' free
room, `plan` says which records change, which instances start where, and why
a task waits. The engine commits the records, then sends the start orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Mapping

from taskorg.master import placement
from taskorg.master.placement import NodeView
from taskorg.master.state import HistoryEvent, Instance, Record
from taskorg.spec import TaskSpec


@dataclass(frozen=True)
class Membership:
    alive: frozenset[str] = frozenset()
    draining: frozenset[str] = frozenset()

    @property
    def usable(self) -> frozenset[str]:
        """Nodes that keep their instances: alive and not draining."""
        return self.alive - self.draining


@dataclass(frozen=True)
class Placement:
    """An instance placed on a node (its new record), to be started there."""

    instance: Instance
    spec: TaskSpec
    address: str


@dataclass
class Plan:
    records: list[Record] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # task id -> why it is not placed


def membership_events(before: Membership | None, after: Membership, now: float) -> list[Record]:
    """History rows (and so events) for nodes that joined, died or were drained since `before`."""
    if before is None:
        return []
    events: list[Record] = [HistoryEvent(None, None, "node_joined", n, "alive", now)
                            for n in sorted(after.alive - before.alive)]
    events += [HistoryEvent(None, None, "node_dead", n, "no heartbeat", now) for n in sorted(before.alive - after.alive)]
    events += [HistoryEvent(None, None, "node_drained", n, "draining", now)
               for n in sorted(after.draining - before.draining)]
    return events


def plan(instances: Iterable[Instance], membership: Membership, dependencies: Mapping[tuple[str, str], str],
         spec_of: Callable[[Instance], TaskSpec], nodes: Callable[[], list[NodeView]], now: float,
         healthy: Collection[tuple[str, str]] = frozenset()) -> Plan:
    """Decide one tick. `nodes` is asked (once) only when something is to be placed: what every
    node has reserved costs a read of every live instance. `healthy`: (job, task name) of the tasks
    whose every instance runs healthy (or has no health check)."""
    result = Plan()
    views: list[NodeView] | None = None
    for inst in instances:
        if inst.status == "waiting":
            result.records += released(inst, spec_of(inst), dependencies, now, healthy)
        elif inst.status in ("starting", "running") and inst.node not in membership.usable:
            node = inst.node
            why = "drained" if node in membership.draining and node in membership.alive else "dead"
            inst = inst.but(status="pending", node=None, container_id=None, updated_at=now)
            result.records += [inst, HistoryEvent(inst.task_id, inst.idx, "rescheduled", node,
                                                  f"node {node} {why}: placing again", now)]
        if inst.status == "pending" and (inst.not_before or 0) <= now:
            spec = spec_of(inst)
            if views is None:
                views = nodes()
            chosen, reason = placement.choose(inst.task_id, spec, views)
            if chosen is None:
                result.reasons[inst.task_id] = reason
                continue
            placed = inst.but(status="starting", node=chosen.name, attempt=inst.attempt + 1, exit_code=None,
                              error=None, container_id=None, health=None, updated_at=now,
                              # Placed with the task's spec as it is now; a new revision counts restarts afresh.
                              revision=inst.task_revision or 1,
                              restarts=inst.restarts if (inst.revision or 1) == (inst.task_revision or 1) else 0)
            result.records += [placed, HistoryEvent(inst.task_id, inst.idx, "placed", chosen.name,
                                                    f"attempt {placed.attempt}", now)]
            result.placements.append(Placement(placed, spec, chosen.address))
    return result


def released(inst: Instance, spec: TaskSpec, dependencies: Mapping[tuple[str, str], str], now: float,
             healthy: Collection[tuple[str, str]] = frozenset()) -> list[Record]:
    """A waiting instance: failed when a task it waits for failed (or was cancelled), pending once every
    one meets its condition: `after` succeeded, `depends_on` started (running or done) or healthy
    (running, every instance healthy: compose's service_healthy)."""
    job = str(inst.job)
    conditions = {name: "succeeded" for name in spec.after}
    conditions.update({name: how for name, how in spec.depends_on.items() if name not in conditions})
    states = {name: dependencies.get((job, name)) for name in conditions}
    failed = [name for name, status in states.items() if status in ("failed", "cancelled")]
    if failed:
        error = f"dependency {failed[0]} {states[failed[0]]}"
        return [inst.but(status="failed", error=error, finished_at=now, updated_at=now),
                HistoryEvent(inst.task_id, inst.idx, "failed", None, error, now)]
    if all(condition_met(how, states[name], (job, name) in healthy) for name, how in conditions.items()):
        return [inst.but(status="pending", updated_at=now)]
    return []


def condition_met(condition: str, status: str | None, healthy: bool) -> bool:
    """Whether a dependency in `status` meets `condition` (succeeded, started or healthy)."""
    if condition == "started":
        return status in ("running", "succeeded")
    if condition == "healthy":
        return status == "running" and healthy
    return status == "succeeded"


def node_views(placeable: Iterable[Mapping[str, Any]], telemetry: Mapping[str, Mapping[str, Any]]
               ) -> tuple[dict[str, NodeView], list[str]]:
    """Views of the placeable nodes whose telemetry is known, and the nodes whose telemetry is wanted."""
    views: dict[str, NodeView] = {}
    wanted: list[str] = []
    for member in placeable:
        tele = telemetry.get(member["node"])
        if not tele:
            wanted.append(member["node"])
            continue
        views[member["node"]] = NodeView(
            name=member["node"], address=member["address"], labels=member.get("labels") or {},
            cpus=float(tele.get("cpu_count") or 1), memory=int(tele.get("memory_total") or 0),
            speed=float(tele.get("speed") or 1.0), load=float(tele.get("cpu_percent") or 0) / 100,
            gpus=len(tele.get("gpus") or ()))
    return views, wanted


def reserve(views: Mapping[str, NodeView], live: Iterable[tuple[str, str]], specs: Mapping[str, TaskSpec]) -> None:
    """Count what each live instance (task id, node) already holds on its node."""
    for task_id, node in live:
        if node in views:
            views[node].reserve(task_id, specs[task_id])
