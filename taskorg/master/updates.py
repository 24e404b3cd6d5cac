"""Rolling updates on the active master: the records of an update, each tick's rollout step, rollbacks.

The decisions are `rollout`'s; this reads the state they need, commits what
they return (under the engine's lock, through its `commit`) and has the
slaves stop the containers they name. Nothing lives here between ticks: a
rollout's progress is its replicated `rollouts` row and its instances', so
a new master goes on from them. Apart from the engine, which only holds the
lock, commits, ticks and dispatches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from taskorg import protocol
from taskorg.logs import get_logger
from taskorg.master import rollout, state
from taskorg.master.role import NotMaster
from taskorg.master.rollout import UpdateRefused
from taskorg.master.state import Instance, Record
from taskorg.master.store import Change, Store
from taskorg.spec import JobSpec, TaskSpec

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

__all__ = ["NoPreviousSpec", "NoRunningJob", "UpdateRefused", "Updates", "update_of"]

log = get_logger("master")


class NoPreviousSpec(LookupError):
    """A rollback asked of a job that was never updated."""


class NoRunningJob(LookupError):
    """An update (and only an update) asked for a job name that runs nowhere."""


def update_of(store: Store, job: JobSpec, now: float) -> tuple[list[Record | Change], dict[str, Any]] | None:
    """The records and answer of `job` submitted over the running job of its name; None when none runs."""
    running = state.running_job_named(store, job.name)
    if running is None:
        return None
    tasks = state.job_task_records(store, running["id"])
    instances = {t.id: state.instances(store, t.id) for t in tasks}
    rollouts = {r.task_id: r for r in state.rollouts_of_job(store, running["id"])}
    records, answers = rollout.update_records(running["id"], tasks, instances, rollouts, job, now)
    changed = any(a["update"] == "rolling" for a in answers)
    return records, {"job": running["id"], "name": running["name"], "seed": running["seed"], "tasks": answers,
                     "update": "rolling" if changed else "unchanged"}


class Updates:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine  # read at each call: its pool, role and clock may be swapped (the tick harness does)

    def step(self) -> None:
        """Move every active rollout on one step (from the tick, under the engine lock)."""
        engine = self.engine
        store, now = engine.store, engine.clock()
        records: list[Record | Change] = []
        stops: list[tuple[Instance, float]] = []
        for found in state.active_rollouts(store):
            task = state.task(store, found.task_id)
            target = engine.specs.get(task.id, task.spec)
            protocol.ready(TaskSpec)
            previous = msgspec.json.decode(found.previous_spec, type=TaskSpec)
            decided = rollout.step(found, task, target, previous, state.instances(store, task.id), now)
            records += decided.records
            stops += [(inst, decided.stop_grace) for inst in decided.stop]
        if not records:
            return
        engine.commit(state.with_task_status(store, records, now))  # type: ignore[arg-type]
        for inst, grace in stops:
            if inst.node and inst.container_id:
                engine.pool.submit(self._stop, inst, grace)
        engine.kick.set()

    def _stop(self, old: Instance, grace: float) -> None:
        """Stop a replaced container; once it is gone its slot may start again (the guard is lifted)."""
        engine = self.engine
        try:
            removed = engine.slaves.stop(str(old.node), engine.role.epoch, [str(old.container_id)],
                                         timeout=grace + rollout.STOP_GUARD)
        except Exception as exc:
            log.info("stopping a replaced container failed (its report will tell)",
                     extra={"node": old.node, "error": str(exc)})
            return
        if old.container_id not in removed:
            return
        with engine.lock:
            inst = state.instance(engine.store, old.task_id, old.idx)
            now = engine.clock()
            if inst is None or inst.status != "pending" or inst.node or (inst.not_before or 0) <= now:
                return
            try:
                engine.commit([inst.but(not_before=now, updated_at=now)])
            except NotMaster:
                return
        engine.kick.set()

    def rollback(self, job_id: str) -> dict[str, Any]:
        """Take every updated task of the job back to its previous spec (again: forward to the one left)."""
        engine = self.engine
        with engine.lock:
            engine.require_active()
            state.job_summary(engine.store, job_id)  # NoSuchJob
            found = state.rollouts_of_job(engine.store, job_id)
            if not found:
                raise NoPreviousSpec(f"job {job_id} has no previous spec to go back to: it was never updated")
            now = engine.clock()
            records: list[Record | Change] = []
            answers = []
            for known in found:
                task = state.task(engine.store, known.task_id)
                records += rollout.rollback_records(task, known, state.instances(engine.store, task.id), now,
                                                    "rolled back by a user")
                answers.append({"id": task.id, "name": task.name, "from": task.revision or 1, "to": known.previous})
            engine.commit(state.with_task_status(engine.store, records, now))  # type: ignore[arg-type]
        engine.kick.set()
        return {"job": job_id, "tasks": answers}
