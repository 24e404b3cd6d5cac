"""Jobs: a list of them from task summaries, and one job's dependency graph.

Pure, apart from `AfterCache`, which remembers each task's `after:` list:
a task's spec never changes once submitted, so a job page asks the master
for a task's spec once per webview process, not on every live update.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from taskorg.cli.lookup import jobs_of
from taskorg.webview import layout

STATE_ORDER = ("failed", "running", "starting", "pending", "succeeded", "cancelled")


def job_rows(summaries: Iterable[dict[str, Any]], limit: int, before: float | None = None) -> list[dict[str, Any]]:
    """Jobs newest first (by their first task's creation), at most `limit`, submitted before `before`.

    The grouping and the job's one-word status are the CLI's (`taskorg job ls`), so both say the same.
    """
    summaries = list(summaries)
    updated: dict[str, float] = {}
    for task in summaries:
        if task.get("updated_at") is not None:
            updated[task["job"]] = max(updated.get(task["job"], task["updated_at"]), task["updated_at"])
    rows = []
    for job in jobs_of(summaries):
        if before is not None and (job["created_at"] or 0) >= before:
            continue
        counts = Counter(str(t["status"]) for t in job["tasks"])
        rows.append({"id": job["id"], "name": job["name"] or job["id"], "status": job["status"],
                     "tasks": len(job["tasks"]), "counts": dict(sorted(counts.items(), key=lambda kv: _state_rank(kv[0]))),
                     "submitted_at": job["created_at"], "updated_at": updated.get(job["id"])})
        if len(rows) == limit:
            break
    return rows


def _state_rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


class AfterCache:
    """task id -> its spec's `after:` names; bounded, shared by the webview's threads."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, task_id: str, fetch: Callable[[str], dict[str, Any]]) -> tuple[str, ...]:
        with self._lock:
            if task_id in self._items:
                self._items.move_to_end(task_id)
                return self._items[task_id]
        after = after_names((fetch(task_id).get("spec") or {}).get("after"))
        with self._lock:
            self._items[task_id] = after
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return after


def after_names(value: Any) -> tuple[str, ...]:
    """A spec's `after:` as names: the master stores a list; a lone name is accepted too."""
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class GraphTask:
    """A task as the graph draws it: its state in words and one pip per instance."""

    id: str
    name: str
    status: str
    instances: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def done(self) -> int:
        return sum(1 for s in self.instances if s == "succeeded")

    @property
    def progress(self) -> str:
        """'running · 3/11 done' for a task with several instances; the status word alone otherwise."""
        if len(self.instances) <= 1:
            return self.status
        return f"{self.status} · {self.done}/{len(self.instances)} done"


@dataclass(frozen=True)
class Graph:
    tasks: dict[str, GraphTask]  # by name
    wide: layout.Drawing
    narrow: layout.Drawing


# Desktop: layers left to right. Phone: top to bottom, boxes as wide as a phone allows.
WIDE = layout.Geometry(box_w=180, box_h=66, layer_gap=60, slot_gap=16, horizontal=True)
NARROW = layout.Geometry(box_w=140, box_h=66, layer_gap=34, slot_gap=14, horizontal=False)


def graph(tasks: list[GraphTask]) -> Graph:
    """Both drawings of a job's tasks; edges go from a dependency to its dependant.

    Raises layout.CycleError for a cycle (the master refuses such specs; a page shows a list then).
    """
    by_name = {t.name: t for t in tasks}
    names = list(by_name)
    edges = [(dep, t.name) for t in tasks for dep in t.after]
    return Graph(by_name, layout.draw(names, edges, WIDE), layout.draw(names, edges, NARROW))


def graph_task(summary: dict[str, Any], after: tuple[str, ...]) -> GraphTask:
    instances = tuple(str(i.get("status") or "unknown")
                      for i in sorted(summary.get("instances") or [], key=lambda i: i.get("index") or 0))
    return GraphTask(str(summary.get("id")), str(summary.get("name")), str(summary.get("status") or "unknown"),
                     instances, after)
