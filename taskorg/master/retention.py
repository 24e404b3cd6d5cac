"""Which finished jobs to remove: pure logic, no I/O, the clock passed in.

A finished job (every task succeeded, failed or cancelled) is kept for
`retain_for` seconds after its last task ended, and only the newest `keep`
finished jobs are kept at all; older ones go with their tasks, instances and
history. Without this the state, and so a standby's snapshot, grew about
2 KB per task forever (issue 14).
"""

from __future__ import annotations

from typing import Iterable

# History rows of no task (node events, activations) follow the same age rule; this many of the
# newest stay whatever their age, so the event stream never starts empty.
KEEP_CLUSTER_EVENTS = 100


def jobs_to_remove(finished: Iterable[tuple[str, float]], now: float, retain_for: float, keep: int) -> list[str]:
    """From (job id, finished at) of every finished job: the ids to remove, oldest first."""
    newest_first = sorted(finished, key=lambda item: (-item[1], item[0]))
    expired = [job for index, (job, ended) in enumerate(newest_first)
               if index >= max(0, keep) or ended < now - retain_for]
    return expired[::-1]


def cluster_events_to_remove(events: Iterable[tuple[int, float]], now: float, retain_for: float) -> list[int]:
    """From (history id, time) of the task-less history rows: the ids to remove."""
    newest_first = sorted(events, key=lambda item: -item[0])
    return sorted(event for event, time in newest_first[KEEP_CLUSTER_EVENTS:] if time < now - retain_for)
