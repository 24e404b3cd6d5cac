"""Why each pending task is not placed, as the active master's last plan said.

Kept in memory on the active master, not in the replicated state. A reason
is derived: the plan writes it from the nodes' free room, and it changes
as that room does. Committing it cost every new pending task a second
fsync and replication round (issue 14), and a reason naming free memory
was committed again whenever that memory moved. A new master says it
again at its first full plan, a tick after it takes over.
"""

from __future__ import annotations

from typing import Any, Collection, Iterable, Mapping


FINISHED = ("succeeded", "failed", "cancelled")  # a reason may outlive these until the next full plan


class PendingReasons:
    def __init__(self) -> None:
        # The tick (under the engine lock) builds a new dict and rebinds it; API threads read whichever
        # dict is bound, never one half built.
        self.by_task: dict[str, str] = {}

    def planned(self, seen: Collection[str], placed: Collection[str], reasons: Mapping[str, str],
                full: bool) -> None:
        """A plan read the instances of the `seen` tasks, placed some of `placed`'s and could not place
        those in `reasons`. A full plan read every task that may need a reason: the others' go (placed
        by now, cancelled, finished). A task seen but not weighed (a restart's back-off) keeps its own."""
        if full:
            kept = {t: r for t, r in self.by_task.items() if t in seen and t not in placed}
        else:
            # A quiet plan (new jobs only) after each submission: a C-level copy, not a filter in Python
            # over every pending task's reason, which grew with the backlog (py-spy, issue 14).
            kept = dict(self.by_task)
            for task in placed:
                kept.pop(task, None)
        kept.update(reasons)
        self.by_task = kept

    def get(self, task_id: str) -> str | None:
        return self.by_task.get(task_id)

    def on(self, rows: Iterable[dict[str, Any]]) -> None:
        """Fill each task row's `reason` (rows from the views, with `id` and `status`): a task waits for
        room when pending, and so does a running one with a replica the plan could not place."""
        by_task = self.by_task
        for row in rows:
            row["reason"] = None if row.get("status") in FINISHED else by_task.get(row["id"])
