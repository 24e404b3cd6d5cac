"""Read models for the API: task summaries and details, member rows, counts."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from taskorg.master.store import Store

if TYPE_CHECKING:
    from taskorg.master.engine import Engine


def task_summaries(store: Store, state: str | None = None, node: str | None = None,
                   name: str | None = None, job: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT t.id, t.job, t.name, t.status, t.desired, t.reason, t.created_at, t.updated_at, "
           "j.name AS job_name, "
           "(SELECT json_group_array(json_object('index', idx, 'node', node, 'status', status, 'attempt', attempt)) "
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
    rows = store.rows(sql + " ORDER BY t.created_at DESC, t.name", params)
    for row in rows:
        row["instances"] = json.loads(row["instances"] or "[]")
        row["nodes"] = sorted({i["node"] for i in row["instances"] if i["node"]})
    return rows


def task_detail(store: Store, task_id: str) -> dict[str, Any]:
    task = store.row("SELECT t.*, j.name AS job_name, j.seed FROM tasks t LEFT JOIN jobs j ON j.id = t.job "
                     "WHERE t.id = ?", (task_id,))
    if task is None:
        raise KeyError(task_id)
    task["spec"] = json.loads(task["spec"])
    task["result"] = json.loads(task["result"]) if task["result"] else None
    task["instances"] = [{**i, "index": i.pop("idx")} for i in store.rows(
        "SELECT idx, node, status, attempt, restarts, exit_code, container_id, error, started_at, finished_at "
        "FROM instances WHERE task_id = ? ORDER BY idx", (task_id,))]
    task["history"] = store.rows("SELECT time, idx AS 'index', event, node, detail FROM history "
                                 "WHERE task_id = ? ORDER BY id", (task_id,))
    return task


def status_counts(store: Store) -> dict[str, int]:
    return {r["status"]: r["n"] for r in store.rows("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")}


def member_rows(engine: "Engine") -> list[dict[str, Any]]:
    counts = {r["node"]: r["n"] for r in engine.store.rows(
        "SELECT node, COUNT(*) AS n FROM instances WHERE status IN ('starting', 'running') GROUP BY node")}
    now = time.monotonic()
    rows = []
    for member in engine.members.members():
        tele = dict(engine.telemetry.get(member["node"]) or {})
        received = tele.pop("received", None)
        rows.append({**member, "running": counts.get(member["node"], 0), "telemetry": tele or None,
                     "telemetry_age": round(now - received, 3) if received else None})
    return rows
