"""Read models for the API: task summaries and details, member rows (their SQL is in `state`)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from taskorg.master import state
from taskorg.master.store import Store

if TYPE_CHECKING:
    from taskorg.master.engine import Engine


def task_summaries(store: Store, **filters: str | None) -> list[dict[str, Any]]:
    """Tasks matching `filters` (state, node, name, job), newest first, with their instances."""
    rows = state.task_summaries(store, **filters)
    for row in rows:
        row["instances"] = json.loads(row["instances"] or "[]")
        row["nodes"] = sorted({i["node"] for i in row["instances"] if i["node"]})
    return rows


def task_detail(store: Store, task_id: str) -> dict[str, Any]:
    task = state.task_with_job(store, task_id)
    task["spec"] = json.loads(task["spec"])
    task["result"] = json.loads(task["result"]) if task["result"] else None
    task["instances"] = [{**i, "index": i.pop("idx")} for i in state.instance_details(store, task_id)]
    task["history"] = state.task_history(store, task_id)
    return task


def member_rows(engine: "Engine") -> list[dict[str, Any]]:
    counts = state.live_counts_by_node(engine.store)
    now = time.monotonic()
    rows = []
    for member in engine.members.members():
        tele = dict(engine.telemetry.get(member["node"]) or {})
        received = tele.pop("received", None)
        rows.append({**member, "running": counts.get(member["node"], 0), "telemetry": tele or None,
                     "telemetry_age": round(now - received, 3) if received else None})
    return rows
