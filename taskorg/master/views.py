"""Read models for the API: task summaries and details, member rows (their SQL is in `state`)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from taskorg.master import history, state
from taskorg.master.reasons import PendingReasons
from taskorg.master.states import job_status
from taskorg.master.store import Store

if TYPE_CHECKING:
    from taskorg.master.engine import Engine


def task_summaries(store: Store, reasons: PendingReasons, **filters: str | None) -> list[dict[str, Any]]:
    """Tasks matching `filters` (state, node, name, job), newest first, with their instances and why
    each pending one waits."""
    rows = state.task_summaries(store, **filters)
    reasons.on(rows)
    for row in rows:
        row["instances"] = json.loads(row["instances"] or "[]")
        row["after"] = json.loads(row["after"] or "[]")
        row["nodes"] = sorted({i["node"] for i in row["instances"] if i["node"]})
    return rows


def job_summaries(store: Store, limit: int, before: float | None) -> list[dict[str, Any]]:
    return [job_row(row) for row in state.job_summaries(store, limit, before)]


def job_detail(store: Store, reasons: PendingReasons, job_id: str) -> dict[str, Any]:
    """A job's summary, its tasks' summaries and its rolling update's progress (None: never updated)."""
    return {**job_row(state.job_summary(store, job_id)), "tasks": task_summaries(store, reasons, job=job_id),
            "update": update_progress(store, job_id)}


# The state a job's update shows when its tasks' rollouts differ: the first of these found.
UPDATE_STATES = ("rolling_back", "updating", "paused", "rolled_back", "completed")


def update_progress(store: Store, job_id: str) -> dict[str, Any] | None:
    """Each updated task's rollout (state, batch of batches, revision from and to, instances on it)."""
    rows = state.rollout_progress(store, job_id)
    if not rows:
        return None
    tasks = []
    for row in rows:
        per_batch = row.pop("parallelism") or max(row["instances"], 1)
        tasks.append({**row, "batches": max(1, -(-row["instances"] // per_batch))})
    overall = next(s for s in UPDATE_STATES + (tasks[0]["state"],) if any(t["state"] == s for t in tasks))
    return {"state": overall, "tasks": tasks}


def job_row(row: dict[str, Any]) -> dict[str, Any]:
    counts = json.loads(row["counts"] or "{}")
    return {"id": row["id"], "name": row["name"], "tasks": row["tasks"], "counts": counts,
            "status": job_status(counts), "submitted_at": row["submitted_at"],
            "updated_at": row["updated_at"] or row["submitted_at"]}


def task_detail(store: Store, reasons: PendingReasons, task_id: str) -> dict[str, Any]:
    task = state.task_with_job(store, task_id)
    reasons.on([task])
    task["spec"] = json.loads(task["spec"])
    task["result"] = json.loads(task["result"]) if task["result"] else None
    task["instances"] = [{**i, "index": i.pop("idx")} for i in state.instance_details(store, task_id)]
    task["history"] = state.task_history(store, task_id)
    return task


def member_rows(engine: "Engine", with_history: bool = False) -> list[dict[str, Any]]:
    """The DNS service's members with their running count and telemetry (and the last hour of it), and
    each one's role as this master streams: `master`, `standby` (in the standby set) or `spare` (no
    stream: it keeps the replica it last had; see taskorg.master.standbys)."""
    counts = state.live_counts_by_node(engine.store)
    now = time.monotonic()
    streaming = engine.replicator.running
    standbys = set(engine.replicator.standby_set())
    rows = []
    for member in engine.members.members():
        tele = dict(engine.telemetry.get(member["node"]) or {})
        received = tele.pop("received", None)
        row = {**member, "running": counts.get(member["node"], 0), "telemetry": tele or None,
               "telemetry_age": round(now - received, 3) if received else None}
        if streaming and row.get("role") != "master":
            row["role"] = "standby" if member["node"] in standbys else "spare"
        if with_history:
            row["history"] = node_history(engine, member["node"])
        rows.append(row)
    return rows


def node_history(engine: "Engine", node: str) -> dict[str, Any]:
    """`{node, step, span, points}`: the node's telemetry history, oldest point first."""
    book = engine.telemetry_book.history
    return {"node": node, "step": book.step, "span": book.span,
            "points": history.as_wire(book.points(node, engine.clock()))}
