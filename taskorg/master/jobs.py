"""What a client asks of its jobs and tasks, on the active master: preview, cancel, restart, prune.

Each reads the state and commits under the engine's lock, then has the slaves
stop what no longer runs, outside it. Pruning commits what `retention` picks
in batches (a big prune never holds the lock for long at once) and runs
itself about once a minute from the tick. Apart from the engine, which only
holds the lock, commits, ticks and dispatches.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from taskorg.logs import get_logger
from taskorg.master import placement, retention, state
from taskorg.master.role import NotMaster
from taskorg.master.slaves import quietly
from taskorg.master.state import Record
from taskorg.spec import JobSpec

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

log = get_logger("master")
PRUNE_EVERY = 60.0  # seconds between automatic prunes of finished jobs
PRUNE_BATCH = 500  # delete changes per commit: a big prune never holds the lock for long at once
# Pruned job ids are told to every reporting slave for this long (seconds), so each removes the job's
# directory on its shared storage; at most PRUNED_TOLD ids per answer.
PRUNED_TOLD_FOR = 60.0
PRUNED_TOLD = 2000


class JobActions:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine  # read at each call: its pool, role and clock may be swapped (the tick harness does)
        self.pruned_at = 0.0  # wall clock of the last automatic prune
        self.pruned: deque[tuple[float, str]] = deque(maxlen=PRUNED_TOLD)  # (when, job id), newest last

    def cancel(self, task_id: str) -> dict[str, Any]:
        engine = self.engine
        with engine.lock:
            engine.require_active()
            task = state.task(engine.store, task_id)
            if task.desired == "cancelled":
                return {"id": task_id, "status": task.status}
            records, status = state.cancel_records(task, state.instances(engine.store, task_id), engine.clock())
            engine.commit(records)
            nodes = self._nodes_of(task_id)
        self._stop_task_on(nodes, task_id)
        return {"id": task_id, "status": status}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel every task of a job in one commit; each task's status after."""
        engine = self.engine
        with engine.lock:
            engine.require_active()
            records: list[Record] = []
            answers, nodes = [], {}
            for task_id in state.job_task_ids(engine.store, job_id):
                task = state.task(engine.store, task_id)
                if task.desired != "cancelled":
                    cancelled, task_status = state.cancel_records(task, state.instances(engine.store, task_id),
                                                                  engine.clock())
                    records += cancelled
                    nodes[task_id] = self._nodes_of(task_id)
                else:
                    task_status = task.status
                answers.append({"id": task_id, "status": task_status})
            engine.commit(records)
        for task_id, on in nodes.items():
            self._stop_task_on(on, task_id)
        return {"id": job_id, "tasks": answers}

    def restart(self, task_id: str) -> dict[str, Any]:
        engine = self.engine
        with engine.lock:
            engine.require_active()
            task = state.task(engine.store, task_id)
            spec = engine.specs.get(task.id, task.spec)
            records, status = state.restart_records(task, spec, state.instances(engine.store, task_id),
                                                    engine.clock())
            engine.commit(records)
            nodes = self._nodes_of(task_id)
        self._stop_task_on(nodes, task_id)
        engine.kick.set()
        return {"id": task_id, "status": status}

    def _nodes_of(self, task_id: str) -> set[str]:
        return {i.node for i in state.instances(self.engine.store, task_id) if i.node}

    def _stop_task_on(self, nodes: set[str], task_id: str) -> None:
        engine = self.engine
        for node in nodes:
            engine.pool.submit(quietly, engine.slaves.stop_task, node, engine.role.epoch, task_id)

    def preview(self, job: JobSpec) -> dict[str, list[str | None]]:
        """Where each task's instances would go now, committing nothing."""
        self.engine.members.refresh()
        nodes = self.engine.node_views()
        placements: dict[str, list[str | None]] = {}
        for spec in job.tasks:
            chosen = [placement.choose(f"preview-{spec.name}", spec, nodes)[0] for _ in range(spec.instance_count)]
            placements[spec.name] = [node.name if node else None for node in chosen]
        return placements

    def prune(self) -> dict[str, int]:
        """Remove finished jobs past their retention (and old node events), as replicated delete changes."""
        engine = self.engine
        engine.require_active()
        removed = {"jobs": 0, "events": 0}
        with engine.lock:
            now = engine.clock()
            jobs = retention.jobs_to_remove(state.finished_jobs(engine.store), now, engine.config.retain_finished_for,
                                            engine.config.retain_finished_jobs)
            events = retention.cluster_events_to_remove(state.cluster_events(engine.store), now,
                                                        engine.config.retain_finished_for)
            changes = state.removal_changes(jobs, events)
            for start in range(0, len(changes), PRUNE_BATCH):
                engine.commit(changes[start:start + PRUNE_BATCH])
            removed = {"jobs": len(jobs), "events": len(events)}
            self.pruned.extend((now, job_id) for job_id in jobs)
        if jobs or events:
            log.info("pruned finished jobs", extra=removed)
        return removed

    def recently_pruned(self) -> list[str]:
        """Job ids pruned within PRUNED_TOLD_FOR: each slave removes their directories (answer to a report)."""
        since = self.engine.clock() - PRUNED_TOLD_FOR
        return [job_id for when, job_id in self.pruned if when >= since]

    def prune_if_due(self) -> None:
        """Prune on the engine's pool if the last automatic prune is PRUNE_EVERY old (called by each tick)."""
        now = self.engine.clock()
        if now - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = now
            self.engine.pool.submit(self._prune_quietly)

    def _prune_quietly(self) -> None:
        try:
            self.prune()
        except NotMaster:
            pass  # the next master prunes
        except Exception:
            log.exception("pruning finished jobs failed")
