"""Rolling updates and rollbacks, decided: pure logic, no I/O, the clock passed in.

A task whose spec changed carries a `Rollout` record (state.py), replicated
like every other row, so a new master carries an update on from where the
old one left it. Each tick `step` reads one rollout, the task's spec now
(the target) and before (`previous`), its instances with their health, and
says what comes next: the next batch of `parallelism` old instances to
replace (stop-first: the old container stops, then its slot starts on the
new spec; start-first: a new instance starts beside it and the old one goes
once the new one is ready), to wait (a batch not yet healthy for `monitor`
seconds, the `delay` between batches), to complete, or, when new instances
fail beyond `max_failure_ratio`, the `failure_action`: roll back, pause, or
go on. The engine commits the records and stops the containers named.

An instance placed while a rollout runs (a pending one, a restart) always
starts on the target spec: what a batch replaces are only the live
instances of another revision.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Iterable

from taskorg.master.state import HistoryEvent, Instance, Record, Rollout, Task
from taskorg.master.states import TERMINAL
from taskorg.master.store import Change, Delete
from taskorg.spec import JobSpec, TaskSpec, UpdateConfig

ACTIVE = ("updating", "rolling_back")
LIVE = ("starting", "running")
# A stop-first slot starts again only once its old container is stopped (the engine clears the
# guard then), or this long past the old spec's stop grace if that answer never comes.
STOP_GUARD = 5.0


class UpdateRefused(ValueError):
    """A submission cannot update the running job of its name; the text says why."""


@dataclass
class Step:
    """What one tick does for one rollout."""

    records: list[Record | Change] = field(default_factory=list)
    stop: list[Instance] = field(default_factory=list)  # old instances whose containers stop now
    stop_grace: float = 0.0  # how long those stops may take (the old spec's stop grace period)


# ---- the tick's decision -----------------------------------------------------------------------
def config_of(rollout: Rollout, target: TaskSpec, previous: TaskSpec) -> UpdateConfig:
    """Going forward the new spec's update_config; going back the rollback_config of the spec left."""
    return previous.rollback_config if rollout.state == "rolling_back" else target.update_config


def revision_of(inst: Instance, target: int) -> int:
    """The revision an instance runs; one not started yet will start on the target."""
    if inst.status in ("pending", "waiting"):
        return target
    return inst.revision or 1


def is_ready(inst: Instance, spec: TaskSpec, monitor: float, now: float) -> bool:
    """Running, healthy (or with no health check), for at least `monitor` seconds."""
    if inst.status != "running":
        return False
    checked = spec.healthcheck is not None and not spec.healthcheck.disabled
    if inst.health == "unhealthy" or (checked and inst.health != "healthy"):
        return False
    return now - (inst.started_at or now) >= monitor


def has_failed(inst: Instance) -> bool:
    """An instance that failed, restarted or turned unhealthy since it was placed on its revision (a
    placement on another revision, and the start of a rollout, count its restarts afresh)."""
    return inst.status == "failed" or (inst.restarts or 0) > 0 or inst.health == "unhealthy"


def batches(count: int, config: UpdateConfig) -> int:
    return max(1, math.ceil(count / (config.parallelism or max(count, 1))))


def step(rollout: Rollout, task: Task, target: TaskSpec, previous: TaskSpec, instances: Iterable[Instance],
         now: float) -> Step:
    """The next move of one active rollout (nothing for one that is paused or ended)."""
    if rollout.state not in ACTIVE:
        return Step()
    config = config_of(rollout, target, previous)
    rev = rollout.revision
    present = [i for i in instances if i.status != "cancelled"]
    new = [i for i in present if revision_of(i, rev) == rev]
    old_live = sorted((i for i in present if revision_of(i, rev) != rev and i.status in LIVE), key=lambda i: i.idx)
    failed = [i for i in present if (i.revision or 1) == rev and has_failed(i)]
    want = target.instance_count
    if failed and config.failure_action != "continue" and len(failed) > config.max_failure_ratio * want:
        return failure(rollout, task, present, failed, config, now)
    counted = rollout.but(failures=len(failed)) if len(failed) != rollout.failures else rollout
    going_on = config.failure_action == "continue"
    waiting = [i for i in new if not is_ready(i, target, config.monitor, now) and not (going_on and has_failed(i))]
    if waiting:
        return Step([counted] if counted is not rollout else [])
    surplus = sum(1 for i in present if i.status not in TERMINAL) - want
    if surplus > 0 and old_live:
        return retire(counted, old_live[:surplus], config, previous, now)
    if not old_live:
        return complete(counted, len(new), now)
    if counted.next_at is None and counted.batch > 0:
        counted = counted.but(next_at=now + config.delay, updated_at=now)
    if counted.next_at is not None and now < counted.next_at:
        return Step([counted] if counted is not rollout else [])
    return begin_batch(counted, target, previous, present, old_live, config, now)


def begin_batch(rollout: Rollout, target: TaskSpec, previous: TaskSpec, present: list[Instance],
                old_live: list[Instance], config: UpdateConfig, now: float) -> Step:
    """Replace the next `parallelism` old instances, in the order the config asks."""
    chosen = old_live[:config.parallelism or len(old_live)]
    number = rollout.batch + 1
    total = rollout.batch + batches(len(old_live), config)
    what = "going back to" if rollout.state == "rolling_back" else "updating to"
    detail = (f"batch {number} of {total}: {what} revision {rollout.revision}, "
              f"{config.order} (instances {', '.join(str(i.idx) for i in chosen)})")
    result = Step([rollout.but(batch=number, next_at=None, updated_at=now, detail=detail),
                   HistoryEvent(rollout.task_id, None, "update_batch", None, detail, now)])
    if config.order == "start-first":
        top = max((i.idx for i in present), default=-1)
        result.records += [Instance(task_id=rollout.task_id, idx=top + 1 + n, status="pending",
                                    revision=rollout.revision, updated_at=now) for n in range(len(chosen))]
        return result
    guard = now + previous.stop_grace_period + STOP_GUARD
    for inst in chosen:
        result.records.append(inst.but(status="pending", node=None, container_id=None, revision=rollout.revision,
                                       restarts=0, health=None, exit_code=None, error=None, not_before=guard,
                                       updated_at=now))
        result.stop.append(inst)
    result.stop_grace = previous.stop_grace_period
    return result


def retire(rollout: Rollout, old: list[Instance], config: UpdateConfig, previous: TaskSpec, now: float) -> Step:
    """Start-first: the new instances are ready, so as many old ones go (their rows too)."""
    detail = f"replaced: instances {', '.join(str(i.idx) for i in old)} stop"
    records: list[Record | Change] = [rollout.but(next_at=now + config.delay, updated_at=now)]
    for inst in old:
        records += [Delete("instances", {"task_id": inst.task_id, "idx": inst.idx}),
                    HistoryEvent(inst.task_id, inst.idx, "replaced", inst.node, detail, now)]
    return Step(records, list(old), previous.stop_grace_period)


def complete(rollout: Rollout, count: int, now: float) -> Step:
    ended = "rolled_back" if rollout.state == "rolling_back" else "completed"
    detail = f"{count} instance(s) on revision {rollout.revision}"
    event = "rollback_completed" if ended == "rolled_back" else "update_completed"
    return Step([rollout.but(state=ended, next_at=None, updated_at=now, detail=detail),
                 HistoryEvent(rollout.task_id, None, event, None, detail, now)])


def failure(rollout: Rollout, task: Task, present: list[Instance], failed: list[Instance], config: UpdateConfig,
            now: float) -> Step:
    """New instances failed beyond `max_failure_ratio`: the failure action."""
    reason = (f"{len(failed)} of {len(present)} instance(s) on revision {rollout.revision} failed "
              f"(instance {failed[0].idx}: {failed[0].error or failed[0].health or failed[0].status})")
    if config.failure_action == "rollback" and rollout.state == "updating":
        return Step([HistoryEvent(task.id, None, "update_failed", None, f"{reason}; rolling back", now),
                     *rollback_records(task, rollout, present, now, f"update failed: {reason}")])
    detail = f"paused: {reason}"
    return Step([rollout.but(state="paused", failures=len(failed), updated_at=now, detail=detail),
                 HistoryEvent(task.id, None, "update_paused", None, detail, now)])


# ---- what starts a rollout ---------------------------------------------------------------------
def rollback_records(task: Task, rollout: Rollout, instances: Iterable[Instance], now: float,
                     reason: str) -> list[Record | Change]:
    """Go back to the previous spec: the task takes it again, the rollout turns round (its previous is
    now the spec left), and failed instances come back to be placed on it."""
    records: list[Record | Change] = [
        dataclasses.replace(task, spec=rollout.previous_spec, revision=rollout.previous, updated_at=now),
        rollout.but(state="rolling_back", revision=rollout.previous, previous=task.revision or 1,
                    previous_spec=task.spec, batch=0, failures=0, next_at=None, started_at=now, updated_at=now,
                    detail=reason),
        HistoryEvent(task.id, None, "rollback_started", None,
                     f"revision {task.revision or 1} -> {rollout.previous}: {reason}", now)]
    present, changed = fresh_start([i for i in instances if i.status != "cancelled"], rollout.previous, now)
    records += changed
    count = TaskSpec.from_dict(json.loads(rollout.previous_spec)).instance_count
    records += scale_records(task.id, present, count, rollout.previous, now)
    return records


def fresh_start(present: list[Instance], revision: int, now: float) -> tuple[list[Instance], list[Record]]:
    """At a rollout's start: failed instances come back to be placed (on the target), and those already
    on the target revision count their restarts afresh (only failures from now on count)."""
    result: list[Instance] = []
    changed: list[Record] = []
    for inst in present:
        if inst.status == "failed":
            inst = inst.but(status="pending", node=None, restarts=0, error=None, not_before=None, finished_at=None,
                            updated_at=now)
            changed.append(inst)
        elif (inst.revision or 1) == revision and inst.restarts:
            inst = inst.but(restarts=0, updated_at=now)
            changed.append(inst)
        result.append(inst)
    return result, changed


def update_records(job_id: str, tasks: list[Task], instances: dict[str, list[Instance]],
                   rollouts: dict[str, Rollout], job: JobSpec, now: float) -> tuple[list[Record | Change], list[dict]]:
    """A new spec for a running job: each changed task gets a new revision and a rollout; unchanged ones
    stay. Refused (UpdateRefused) when the tasks are not the same ones."""
    by_name = {t.name: t for t in tasks}
    added = [spec.name for spec in job.tasks if spec.name not in by_name]
    missing = sorted(set(by_name) - {spec.name for spec in job.tasks})
    if added or missing:
        change = "; ".join(([f"adds {', '.join(added)}"] if added else []) +
                           ([f"drops {', '.join(missing)}"] if missing else []))
        raise UpdateRefused(f"job {job.name} ({job_id}) runs; an update keeps its tasks, but this one {change}: "
                            "cancel the job and submit it again, or give the job another name")
    records: list[Record | Change] = []
    answers: list[dict] = []
    for spec in job.tasks:
        task = by_name[spec.name]
        text = json.dumps(spec.to_dict())
        current = task.revision or 1
        if text == task.spec:
            answers.append({"id": task.id, "name": task.name, "revision": current, "update": "unchanged"})
            continue
        known = rollouts.get(task.id)
        rev = max(current, known.revision if known else 0, known.previous if known else 0) + 1
        detail = f"revision {current} -> {rev}"
        records += [dataclasses.replace(task, spec=text, revision=rev, updated_at=now),
                    Rollout(task.id, job_id, "updating", rev, current, task.spec, started_at=now, updated_at=now,
                            detail=detail),
                    HistoryEvent(task.id, None, "update_started", None, detail, now)]
        present, changed = fresh_start([i for i in instances.get(task.id, []) if i.status != "cancelled"], rev,
                                       now)
        records += changed
        records += scale_records(task.id, present, spec.instance_count, rev, now)
        answers.append({"id": task.id, "name": task.name, "revision": rev, "previous": current,
                        "update": "rolling"})
    return records, answers


def scale_records(task_id: str, present: list[Instance], count: int, revision: int, now: float) -> list[Record]:
    """As many live instances as `count`: new pending ones on `revision`, or the highest indexes cancelled."""
    live = sorted((i for i in present if i.status not in TERMINAL), key=lambda i: i.idx)
    if len(live) > count:
        return [i.but(status="cancelled", finished_at=now, updated_at=now) for i in live[count:]]
    top = max((i.idx for i in present), default=-1)
    return [Instance(task_id=task_id, idx=top + 1 + n, status="pending", revision=revision, updated_at=now)
            for n in range(count - len(live))]
