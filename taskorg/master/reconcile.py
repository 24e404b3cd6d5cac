"""What a slave's containers mean for the state: pure logic, no I/O, the clock passed in.

A report (or a start answer) lists containers; each is matched with the
instance it claims to be. The result is the records to commit and the
containers the slave must stop: a cancelled or unknown task's, a duplicate
from a healed partition, an older attempt. A complete report also shows what
is missing: a placed instance whose container is gone for a few seconds is
lost and placed again, unless the report was listed before its start was
answered (both carry the slave's own clock; under load a report arrives late).
A missing container still within its grace is looked at again when the grace
ends (`recheck`): slaves report on change and resync only every few seconds,
so the next report could come long after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping

from taskorg.master.state import HistoryEvent, Instance, InstanceKey, Record, StartKey
from taskorg.master.states import TERMINAL, counted_restarts, restart_decision
from taskorg.protocol import ContainerState
from taskorg.spec import TaskSpec

# A container missing from a report is "lost" only after this long in its
# state: a report listed before a start finished must not count against it.
START_GRACE = 20.0
RUNNING_GRACE = 5.0


@dataclass
class Reconciliation:
    records: list[Record] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)  # container ids
    # Start answers a report listed after them made moot (the grace is enough from now on).
    settled: list[StartKey] = field(default_factory=list)
    # Seconds until the first grace of a missing container ends (None: none waits): list the node again then.
    recheck: float | None = None


@dataclass(frozen=True)
class Listing:
    """What a slave said: its node, its containers, and whether that is all it runs."""

    node: str
    containers: list[ContainerState]
    complete: bool = True  # a report lists everything; a start answer only its container
    listed: float | None = None  # the slave's clock when it listed (None from an older slave)


def reconcile(listing: Listing, instances: Mapping[InstanceKey, Instance], spec_of: Callable[[Instance], TaskSpec],
              starts_in_flight: Collection[StartKey], start_answers: Mapping[StartKey, float],
              now: float) -> Reconciliation:
    """Fold one listing into the state: the records to commit and the containers to stop."""
    result = Reconciliation()
    seen: set[StartKey] = set()
    for container in listing.containers:
        inst = instances.get((container.task_id, container.index))
        seen.add((container.task_id, container.index, container.attempt or 0))
        verdict = judge(listing.node, container, inst, spec_of, now)
        if verdict == "stop":
            if container.container_id:  # a start that failed has none: nothing to stop
                result.stop.append(container.container_id)
        elif verdict:
            result.records += verdict
            if container.health == "unhealthy" and container.container_id and container.status == "running":
                result.stop.append(container.container_id)
    if listing.complete:
        lost(listing, instances.values(), seen, starts_in_flight, start_answers, now, result)
    return result


def judge(node: str, container: ContainerState, inst: Instance | None, spec_of: Callable[[Instance], TaskSpec],
          now: float) -> str | list[Record] | None:
    """What one reported container means: 'stop', records, or nothing."""
    if inst is None or inst.desired == "cancelled":
        return "stop"
    attempt = container.attempt or 0
    if inst.node != node or attempt != inst.attempt:
        return "stop"  # a duplicate (healed partition) or an older attempt
    status = container.status
    if inst.status in TERMINAL or inst.status == "pending":
        if status != "running":
            return None
        if container.container_id and container.container_id == inst.container_id and inst.health != "unhealthy":
            # The very container we saw finish: a report listed before it exited and
            # delivered after the start answer that said so. Stale, not a duplicate.
            return None
        return "stop"  # (an unhealthy one we are replacing is stopped until it is gone)
    if status == "running":
        if container.health == "unhealthy":
            return unhealthy(node, container, inst, spec_of(inst), now)
        if inst.status != "running" or inst.container_id != container.container_id:
            row = inst.but(status="running", container_id=container.container_id, error=None, started_at=now,
                           health=container.health, updated_at=now)
            return [row, HistoryEvent(inst.task_id, inst.idx, "running", node, f"attempt {attempt}", now)]
        if inst.health != container.health:
            return [inst.but(health=container.health, updated_at=now)]
        return None
    if status in ("exited", "dead", "error"):
        return finished(node, container, inst, spec_of(inst), now)
    return None


def finished(node: str, container: ContainerState, inst: Instance, spec: TaskSpec, now: float) -> list[Record]:
    """An instance's container ended: its restart policy decides what comes next."""
    restarts = counted_restarts(spec, inst.restarts, ran_for(inst, now))
    decision = restart_decision(spec, container.exit_code, container.error, restarts)
    if container.result_error and not container.error:
        decision = decision.with_detail(f"{decision.detail}; {container.result_error}")
    row = inst.but(container_id=container.container_id, exit_code=container.exit_code, error=container.error,
                   finished_at=now, updated_at=now,
                   result=None if container.result is None else json.dumps(container.result))
    if decision.restart:
        row = row.but(status="pending", node=None, restarts=restarts + 1, not_before=now + decision.delay)
    else:
        row = row.but(status=decision.final_status)
    return [row, HistoryEvent(inst.task_id, inst.idx, decision.event, node, decision.detail, now)]


def unhealthy(node: str, container: ContainerState, inst: Instance, spec: TaskSpec, now: float) -> list[Record]:
    """A running container whose health check fails: restarted under the task's restart policy, as if it
    had failed (its container is stopped: see `reconcile`), with an `unhealthy` history event."""
    restarts = counted_restarts(spec, inst.restarts, ran_for(inst, now))
    decision = restart_decision(spec, None, "its health check failed", restarts)
    row = inst.but(container_id=container.container_id, health="unhealthy", error="unhealthy", finished_at=now,
                   updated_at=now)
    if decision.restart:
        row = row.but(status="pending", node=None, restarts=restarts + 1, not_before=now + decision.delay)
    else:
        row = row.but(status=decision.final_status)
    policy = decision.detail.partition("; ")[2]
    return [row, HistoryEvent(inst.task_id, inst.idx, "unhealthy", node, f"its health check failed; {policy}", now)]


def ran_for(inst: Instance, now: float) -> float | None:
    """How long the instance's current attempt has run, for the restart window: None unless it was seen
    running (started_at stays from an earlier attempt until the new one is seen running)."""
    return now - inst.started_at if inst.status == "running" and inst.started_at is not None else None


def lost(listing: Listing, instances: Iterable[Instance], seen: set[StartKey], starts_in_flight: Collection[StartKey],
         start_answers: Mapping[StartKey, float], now: float, result: Reconciliation) -> None:
    """Instances placed on the node whose containers the complete listing lacks, past their grace."""
    for inst in instances:
        if inst.node != listing.node or inst.status not in ("starting", "running"):
            continue
        key = inst.start_key
        answered = start_answers.get(key)
        if answered is not None and listing.listed is not None:
            if listing.listed < answered:
                continue  # listed before the start finished: says nothing about this container
            result.settled.append(key)
        if key in seen or key in starts_in_flight:
            continue
        grace = START_GRACE if inst.status == "starting" else RUNNING_GRACE
        left = (inst.updated_at or 0) + grace - now
        if left > 0:
            result.recheck = left if result.recheck is None else min(result.recheck, left)
            continue
        result.records += [inst.but(status="pending", node=None, container_id=None, updated_at=now),
                           HistoryEvent(inst.task_id, inst.idx, "lost", listing.node,
                                        "its container disappeared; starting it again", now)]
