"""The master's state as typed records: jobs, tasks, instances, history; their queries and change builders.

This is the only SQL above `store.py`. Decision code (`plan`, `reconcile`)
reads these records and returns new ones; the engine commits them
(`records_to_changes` turns them into the store's whole-row changes, and
hands history rows their ids only then, in commit order).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

from taskorg.master.states import TERMINAL, task_status
from taskorg.master.store import TABLES, Change, Delete, Store
from taskorg.protocol import StartOrder
from taskorg.spec import JobSpec, TaskSpec

MAX_RESULTS_ENV = 64 * 1024
InstanceKey = tuple[str, int]  # (task id, index)
StartKey = tuple[str, int, int]  # (task id, index, attempt)


class NoSuchTask(LookupError):
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class NoSuchJob(LookupError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class Stored:
    """A record that is one row of the store's table `TABLE`."""

    __slots__ = ()
    TABLE = ""

    def row(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in TABLES[self.TABLE]}


@dataclass(slots=True)
class Job(Stored):
    id: str
    name: str
    seed: int
    source: str
    submitted_at: float
    request_id: str | None = None
    TABLE = "jobs"


@dataclass(slots=True)
class Task(Stored):
    id: str
    job: str
    name: str
    spec: str  # the canonical TaskSpec as JSON, as stored and replicated
    desired: str
    status: str
    reason: str | None
    result: str | None
    created_at: float
    updated_at: float
    revision: int | None = None  # the spec's revision: 1 at submission, one up with each update (None: 1)
    TABLE = "tasks"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Task":
        return cls(**{column: row.get(column) for column in TABLES["tasks"]})


@dataclass(slots=True)
class Instance(Stored):
    task_id: str
    idx: int
    status: str
    node: str | None = None
    attempt: int = 0
    restarts: int = 0
    exit_code: int | None = None
    container_id: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None
    updated_at: float | None = None
    result: str | None = None
    health: str | None = None  # Docker's health check status of its container: starting, healthy, unhealthy
    revision: int | None = None  # the task's spec revision it was placed with (None: 1)
    # Joined in from the task by the queries that need them; never stored with the instance.
    spec: str | None = None
    job: str | None = None
    name: str | None = None
    desired: str | None = None
    task_revision: int | None = None
    TABLE = "instances"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Instance":
        """From a query's row: the instance's columns, and any of the task's the query joined in."""
        return cls(**row)

    @property
    def key(self) -> InstanceKey:
        return self.task_id, self.idx

    @property
    def start_key(self) -> StartKey:
        return self.task_id, self.idx, self.attempt

    def but(self, **changes: Any) -> "Instance":
        """A copy with `changes` (records are replaced, never changed in place)."""
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class HistoryEvent:
    """A history row without its id: the id is handed out when it is committed."""

    task_id: str | None
    idx: int | None
    event: str
    node: str | None
    detail: str
    time: float = field(default=0.0)


@dataclass(slots=True)
class Rollout(Stored):
    """A task's rolling update (or rollback) and where it stands; kept after it ends, for a rollback.

    `state`: updating, rolling_back, paused, completed or rolled_back. `revision` is the spec revision
    the task goes to, `previous` the one it came from, whose spec `previous_spec` keeps. `batch`
    counts the batches begun, `failures` the new instances that failed; no batch begins before
    `next_at` (None: the batch in flight has not finished)."""

    task_id: str
    job: str
    state: str
    revision: int
    previous: int
    previous_spec: str
    batch: int = 0
    failures: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    next_at: float | None = None
    detail: str = ""
    TABLE = "rollouts"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Rollout":
        return cls(**{column: row.get(column) for column in TABLES["rollouts"]})

    def but(self, **changes: Any) -> "Rollout":
        return dataclasses.replace(self, **changes)


Record = Union[Job, Task, Instance, HistoryEvent, Rollout]


def records_to_changes(store: Store, records: Iterable[Record | Change]) -> list[Change]:
    """The store's whole-row changes for `records`; call it under the engine lock (history ids in order)."""
    changes: list[Change] = []
    for record in records:
        if isinstance(record, tuple):
            changes.append(record)
        elif isinstance(record, HistoryEvent):
            changes.append(("history", {"id": store.history_id(), "task_id": record.task_id, "idx": record.idx,
                                        "time": record.time, "event": record.event, "node": record.node,
                                        "detail": record.detail}))
        else:
            changes.append((record.TABLE, record.row()))
    return changes


# ---- change builders ---------------------------------------------------------------------------
def new_instance(task_id: str, index: int, status: str, now: float) -> Instance:
    return Instance(task_id=task_id, idx=index, status=status, updated_at=now)


def task_result(instances: list[Instance]) -> str | None:
    """A task's result: its one instance's, or the list of its instances' in index order."""
    values = [json.loads(i.result) if i.result else None for i in sorted(instances, key=lambda i: i.idx)]
    if all(v is None for v in values):
        return None
    return json.dumps(values[0] if len(values) == 1 else values)


def first_status(spec: TaskSpec) -> str:
    """A task that runs after others waits for them; any other is pending at once."""
    return "waiting" if spec.waits_for else "pending"


def job_records(job: JobSpec, source: str, request_id: str | None, now: float) -> tuple[list[Record], dict[str, Any]]:
    """The records of a new job, and the submission's answer (without its seq)."""
    job_id = f"j-{secrets.token_hex(4)}"
    seed = job.seed if job.seed is not None else int.from_bytes(secrets.token_bytes(4), "big")
    records: list[Record] = [Job(job_id, job.name, seed, source, now, request_id)]
    created = []
    for spec in job.tasks:
        task_id = f"t-{secrets.token_hex(4)}"
        status = first_status(spec)
        records.append(Task(task_id, job_id, spec.name, json.dumps(spec.to_dict()), "running", status, None, None,
                            now, now, 1))
        records += [new_instance(task_id, index, status, now) for index in range(spec.instance_count)]
        records.append(HistoryEvent(task_id, None, "submitted", None, f"job {job.name} ({job_id})", now))
        created.append({"id": task_id, "name": spec.name, "instances": spec.instance_count})
    return records, {"job": job_id, "name": job.name, "seed": seed, "tasks": created}


def cancel_records(task: Task, instances: list[Instance], now: float) -> tuple[list[Record], str]:
    """Cancel a task: its live instances, the task, a history row; and the task's status after."""
    records: list[Record] = [i.but(status="cancelled", finished_at=now, updated_at=now)
                             for i in instances if i.status not in TERMINAL]
    status = "cancelled" if records or task.status not in TERMINAL else task.status
    records.append(dataclasses.replace(task, desired="cancelled", status=status, updated_at=now))
    records.append(HistoryEvent(task.id, None, "cancelled", None, "cancelled by a user", now))
    return records, status


def restart_records(task: Task, spec: TaskSpec, instances: list[Instance], now: float) -> tuple[list[Record], str]:
    """Run a task again from the start: fresh instances that keep counting attempts."""
    status = first_status(spec)
    records: list[Record] = [dataclasses.replace(task, desired="running", status=status, reason=None, updated_at=now)]
    for inst in instances:
        records.append(dataclasses.replace(new_instance(task.id, inst.idx, status, now), attempt=inst.attempt))
    records.append(HistoryEvent(task.id, None, "restarted", None, "restarted by a user", now))
    return records, status


def roll_up(task: Task, instances: list[Instance], now: float) -> list[Record]:
    """The task's new status (and its history) from its instances, if it changed."""
    status = task_status([i.status for i in instances])
    if status == task.status:
        return []
    reason = None if status not in ("pending",) else task.reason
    result = task_result(instances) if status == "succeeded" else task.result
    records: list[Record] = [dataclasses.replace(task, status=status, reason=reason, result=result, updated_at=now)]
    if status in ("succeeded", "failed") and task.status != "running" and any(i.attempt for i in instances):
        # Too quick to be seen running: it still started before it ended.
        records.append(HistoryEvent(task.id, None, "task_running", None, f"{task.name} is running", now))
    if status in ("running", "succeeded", "failed", "cancelled"):
        records.append(HistoryEvent(task.id, None, f"task_{status}", None, f"{task.name} is {status}", now))
    return records


def with_task_status(store: Store, records: list[Record], now: float) -> list[Record]:
    """`records` plus the new status of every task whose instances they change."""
    changed = {i.key: i for i in records if isinstance(i, Instance)}
    given = {t.id: t for t in records if isinstance(t, Task)}  # a task changed here (an update's new spec)
    touched = dict.fromkeys(i.task_id for i in changed.values())
    rolled: list[Record] = []
    for task_id in touched:
        stored = instances(store, task_id)
        rows = [changed.get(i.key, i) for i in stored]
        rows += [i for key, i in changed.items() if key[0] == task_id and key not in {s.key for s in stored}]
        rolled += roll_up(given.get(task_id) or task(store, task_id), rows, now)
    return records + rolled


def start_order(store: Store, inst: Instance, spec: TaskSpec, epoch: int) -> StartOrder:
    """What a slave needs to start `inst` (already placed): the spec and the task's environment."""
    seed = store.row("SELECT seed FROM jobs WHERE id = ?", (inst.job,)) or {}
    env = {"TASKORG_INDEX": str(inst.idx), "TASKORG_COUNT": str(spec.instance_count),
           "TASKORG_SEED": str(seed.get("seed") or 0), "TASKORG_JOB_ID": str(inst.job)}
    if spec.after:
        env["TASKORG_RESULTS"] = dependency_results(store, str(inst.job), list(spec.after))
    return StartOrder(epoch=epoch, task_id=inst.task_id, index=inst.idx, attempt=inst.attempt, spec=spec,
                      job=inst.job, env=env)


def dependency_results(store: Store, job: str, names: list[str]) -> str:
    """`{"name": result, ...}` of the tasks this one runs after, as JSON for its environment."""
    rows = store.rows("SELECT name, result FROM tasks WHERE job = ? AND name IN "
                      "(SELECT value FROM json_each(?))", (job, json.dumps(names)))
    text = json.dumps({r["name"]: json.loads(r["result"]) if r["result"] else None for r in rows})
    return text if len(text) <= MAX_RESULTS_ENV else json.dumps({"error": "results too large for the "
                                                                          "environment: read them from the API"})


# ---- queries for the engine --------------------------------------------------------------------
def task(store: Store, task_id: str) -> Task:
    row = store.row("SELECT * FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        raise NoSuchTask(task_id)
    return Task.from_row(row)


def instances(store: Store, task_id: str) -> list[Instance]:
    return [Instance.from_row(r) for r in store.rows("SELECT * FROM instances WHERE task_id = ? ORDER BY idx",
                                                     (task_id,))]


def instance(store: Store, task_id: str, index: int) -> Instance | None:
    row = store.row("SELECT * FROM instances WHERE task_id = ? AND idx = ?", (task_id, index))
    return Instance.from_row(row) if row else None


def job_by_request(store: Store, request_id: str) -> dict[str, Any] | None:
    return store.row("SELECT * FROM jobs WHERE request_id = ?", (request_id,))


def running_job_named(store: Store, name: str) -> dict[str, Any] | None:
    """The newest job of this name with a task still going (not succeeded, failed or cancelled)."""
    return store.row("SELECT * FROM jobs j WHERE j.name = ? AND EXISTS (SELECT 1 FROM tasks t WHERE t.job = j.id "
                     "AND t.status NOT IN ('succeeded', 'failed', 'cancelled')) ORDER BY j.submitted_at DESC LIMIT 1",
                     (name,))


def job_task_records(store: Store, job_id: str) -> list[Task]:
    return [Task.from_row(r) for r in store.rows("SELECT * FROM tasks WHERE job = ? ORDER BY created_at", (job_id,))]


def rollouts_of_job(store: Store, job_id: str) -> list[Rollout]:
    return [Rollout.from_row(r) for r in store.rows("SELECT * FROM rollouts WHERE job = ? ORDER BY task_id",
                                                    (job_id,))]


def active_rollouts(store: Store) -> list[Rollout]:
    """Rollouts under way (updating or rolling back): what each tick moves on."""
    return [Rollout.from_row(r) for r in store.rows("SELECT * FROM rollouts WHERE state IN "
                                                    "('updating', 'rolling_back') ORDER BY started_at, task_id")]


def rollout_progress(store: Store, job_id: str) -> list[dict[str, Any]]:
    """A job's rollouts with their task's name, parallelism and instances on the target revision (running)."""
    return store.rows(
        "SELECT r.task_id, t.name, r.state, r.revision, r.previous, r.batch, r.failures, r.started_at, r.updated_at, "
        "r.detail, json_extract(CASE WHEN r.state IN ('rolling_back', 'rolled_back') THEN r.previous_spec "
        "ELSE t.spec END, CASE WHEN r.state IN ('rolling_back', 'rolled_back') THEN '$.rollback_config.parallelism' "
        "ELSE '$.update_config.parallelism' END) AS parallelism, "
        "(SELECT COUNT(*) FROM instances i WHERE i.task_id = r.task_id AND i.status = 'running' "
        " AND COALESCE(i.revision, 1) = r.revision) AS updated, "
        "(SELECT COUNT(*) FROM instances i WHERE i.task_id = r.task_id AND i.status NOT IN "
        " ('succeeded', 'failed', 'cancelled')) AS instances "
        "FROM rollouts r JOIN tasks t ON t.id = r.task_id WHERE r.job = ? ORDER BY t.created_at", (job_id,))


def job_tasks(store: Store, job_id: str) -> list[dict[str, Any]]:
    """A job's tasks as a submission answers them: id, name, number of instances."""
    return store.rows("SELECT t.id, t.name, (SELECT COUNT(*) FROM instances i WHERE i.task_id = t.id) "
                      "AS instances FROM tasks t WHERE t.job = ? ORDER BY t.created_at", (job_id,))


def instances_of_report(store: Store, node: str, task_ids: Iterable[str],
                        complete: bool = True) -> dict[InstanceKey, Instance]:
    """The instances a node's listing speaks of: those its containers name, and when the listing is
    complete (a report) those placed on the node too (a start answer needs only its own)."""
    rows = store.rows("SELECT i.*, t.spec, t.desired FROM instances i JOIN tasks t ON t.id = i.task_id "
                      "WHERE (? AND i.node = ?) OR i.task_id IN (SELECT value FROM json_each(?))",
                      (complete, node, json.dumps(sorted(set(task_ids)))))
    return {(r["task_id"], r["idx"]): Instance.from_row(r) for r in rows}


def instances_to_plan(store: Store, usable_nodes: Iterable[str], only_tasks: Iterable[str] | None = None) -> list[Instance]:
    """Only instances with something to do: waiting or pending ones, and live ones off the usable nodes
    (of `only_tasks` when given). Scanning every running instance made a tick cost grow with the cluster
    (profiled: 10,000 tasks started at ~10/s)."""
    wanted = ("(i.status IN ('waiting', 'pending') OR (i.status IN ('starting', 'running') AND "
              "(i.node IS NULL OR i.node NOT IN (SELECT value FROM json_each(?)))))")
    params: list[Any] = [json.dumps(sorted(usable_nodes))]
    if only_tasks is not None:
        wanted += " AND i.task_id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(sorted(only_tasks)))
    rows = store.rows(
        "SELECT i.*, t.spec, t.job, t.name, t.desired, t.revision AS task_revision FROM instances i "
        f"JOIN tasks t ON t.id = i.task_id WHERE {wanted} ORDER BY t.created_at, i.idx", params)
    return [Instance.from_row(r) for r in rows]


def dependency_states(store: Store, jobs: Iterable[str]) -> dict[tuple[str, str], str]:
    """(job, task name) -> status, for the jobs given."""
    wanted = sorted(set(jobs))
    if not wanted:
        return {}
    found = store.rows("SELECT job, name, status FROM tasks WHERE job IN (SELECT value FROM json_each(?))",
                       (json.dumps(wanted),))
    return {(r["job"], r["name"]): r["status"] for r in found}


def healthy_tasks(store: Store, jobs: Iterable[str]) -> set[tuple[str, str]]:
    """(job, task name) of the tasks of these jobs whose every instance runs and is healthy (an instance
    whose container has no health check counts as healthy once it runs)."""
    wanted = sorted(set(jobs))
    if not wanted:
        return set()
    rows = store.rows("SELECT t.job, t.name FROM tasks t WHERE t.job IN (SELECT value FROM json_each(?)) AND "
                      "NOT EXISTS (SELECT 1 FROM instances i WHERE i.task_id = t.id AND "
                      "(i.status != 'running' OR COALESCE(i.health, 'healthy') != 'healthy'))", (json.dumps(wanted),))
    return {(r["job"], r["name"]) for r in rows}


def served_instances(store: Store) -> list[tuple[str, str, str, str | None]]:
    """(job name, task name, node, health) of every running instance: what service names are made of."""
    rows = store.rows("SELECT j.name AS job, t.name AS task, i.node, i.health FROM instances i "
                      "JOIN tasks t ON t.id = i.task_id JOIN jobs j ON j.id = t.job "
                      "WHERE i.status = 'running' AND i.node IS NOT NULL")
    return [(r["job"], r["task"], r["node"], r["health"]) for r in rows]


def live_placements(store: Store) -> list[tuple[str, str]]:
    """(task id, node) of every starting or running instance: what each node has reserved."""
    return [(r["task_id"], r["node"]) for r in
            store.rows("SELECT task_id, node FROM instances WHERE status IN ('starting', 'running')")]


def spec_texts(store: Store, task_ids: Iterable[str]) -> dict[str, str]:
    rows = store.rows("SELECT id, spec FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
                      (json.dumps(sorted(task_ids)),))
    return {r["id"]: r["spec"] for r in rows}


# ---- queries for the API (read models) ---------------------------------------------------------
JOB_SUMMARY = ("SELECT j.id, j.name, j.submitted_at, "
               "(SELECT COUNT(*) FROM tasks t WHERE t.job = j.id) AS tasks, "
               "(SELECT json_group_object(status, n) FROM (SELECT status, COUNT(*) AS n FROM tasks t "
               " WHERE t.job = j.id GROUP BY status)) AS counts, "
               "(SELECT MAX(updated_at) FROM tasks t WHERE t.job = j.id) AS updated_at FROM jobs j ")


def job_summaries(store: Store, limit: int, before: float | None = None) -> list[dict[str, Any]]:
    """The newest `limit` jobs submitted before `before` (all when None), newest first."""
    where, params = ("WHERE j.submitted_at < ? ", [before]) if before is not None else ("", [])
    return store.rows(JOB_SUMMARY + where + "ORDER BY j.submitted_at DESC, j.id LIMIT ?", [*params, limit])


def job_summary(store: Store, job_id: str) -> dict[str, Any]:
    found = store.row(JOB_SUMMARY + "WHERE j.id = ?", (job_id,))
    if found is None:
        raise NoSuchJob(job_id)
    return found


def job_task_ids(store: Store, job_id: str) -> list[str]:
    job_summary(store, job_id)  # NoSuchJob
    return [r["id"] for r in store.rows("SELECT id FROM tasks WHERE job = ? ORDER BY created_at", (job_id,))]


def task_summaries(store: Store, state: str | None = None, node: str | None = None,
                   name: str | None = None, job: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT t.id, t.job, t.name, t.status, t.desired, t.reason, t.created_at, t.updated_at, "
           "j.name AS job_name, json_extract(t.spec, '$.after') AS after, "
           "(SELECT json_group_array(json_object('index', idx, 'node', node, 'status', status, 'attempt', attempt, "
           "'health', health, 'revision', COALESCE(revision, 1))) "
           " FROM instances i WHERE i.task_id = t.id) AS instances "
           "FROM tasks t LEFT JOIN jobs j ON j.id = t.job WHERE 1=1")
    params: list[Any] = []
    if state:
        sql += " AND t.status = ?"
        params.append(state)
    if name:
        sql += " AND (t.name LIKE ? OR j.name LIKE ?)"
        params += [f"%{name}%", f"%{name}%"]
    if job:
        sql += " AND t.job = ?"
        params.append(job)
    if node:
        sql += " AND EXISTS (SELECT 1 FROM instances i WHERE i.task_id = t.id AND i.node = ?)"
        params.append(node)
    return store.rows(sql + " ORDER BY t.created_at DESC, t.name", params)


def task_with_job(store: Store, task_id: str) -> dict[str, Any]:
    found = store.row("SELECT t.*, j.name AS job_name, j.seed FROM tasks t LEFT JOIN jobs j ON j.id = t.job "
                      "WHERE t.id = ?", (task_id,))
    if found is None:
        raise NoSuchTask(task_id)
    return found


def instance_details(store: Store, task_id: str) -> list[dict[str, Any]]:
    return store.rows("SELECT idx, node, status, attempt, restarts, exit_code, container_id, error, started_at, "
                      "finished_at, health, COALESCE(revision, 1) AS revision FROM instances WHERE task_id = ? "
                      "ORDER BY idx", (task_id,))


def task_history(store: Store, task_id: str) -> list[dict[str, Any]]:
    return store.rows("SELECT time, idx AS 'index', event, node, detail FROM history "
                      "WHERE task_id = ? ORDER BY id", (task_id,))


def status_counts(store: Store) -> dict[str, int]:
    return {r["status"]: r["n"] for r in store.rows("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")}


def live_counts_by_node(store: Store) -> dict[str, int]:
    return {r["node"]: r["n"] for r in store.rows(
        "SELECT node, COUNT(*) AS n FROM instances WHERE status IN ('starting', 'running') GROUP BY node")}


def history_after(store: Store, since: int, limit: int) -> list[dict[str, Any]]:
    """History rows after id `since`, oldest first, with their task's job and name."""
    return store.rows("SELECT h.id, h.time, h.event, h.task_id, h.idx, h.node, h.detail, t.job, t.name "
                      "FROM history h LEFT JOIN tasks t ON t.id = h.task_id WHERE h.id > ? ORDER BY h.id LIMIT ?",
                      (since, limit))


def finished_jobs(store: Store) -> list[tuple[str, float]]:
    """(job id, when its last task ended) of every job whose tasks have all ended."""
    rows = store.rows("SELECT job, MAX(updated_at) AS ended FROM tasks GROUP BY job HAVING "
                      "SUM(status NOT IN ('succeeded', 'failed', 'cancelled')) = 0")
    return [(r["job"], r["ended"] or 0.0) for r in rows]


def cluster_events(store: Store) -> list[tuple[int, float]]:
    """(history id, time) of the history rows of no task: node events, activations."""
    return [(r["id"], r["time"] or 0.0) for r in store.rows("SELECT id, time FROM history WHERE task_id IS NULL")]


def removal_changes(jobs: Iterable[str], events: Iterable[int]) -> list[Change]:
    """Delete changes: a job's takes its tasks, instances and history with it (see `store.Delete`)."""
    return [Delete("jobs", {"id": job}) for job in jobs] + [Delete("history", {"id": event}) for event in events]


def last_history_id(store: Store) -> int:
    found = store.row("SELECT MAX(id) AS id FROM history") or {}
    return found.get("id") or 0
