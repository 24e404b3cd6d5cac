"""The master's event stream: task, node and master events, resumable by id.

Events are the replicated history rows, so their ids carry on unchanged on a
new master after a failover. An event is handed out only once its change is
replicated (when a standby is alive): a client never sees an event that a
failover could take back, so resuming from the last id it saw has no gaps.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Iterator

from taskorg.master.state import history_after

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

# History events as the stream names them; others pass as `instance_<event>`.
KINDS = {
    "submitted": "task_submitted",
    "task_running": "task_started",
    "task_succeeded": "task_finished",
    "task_failed": "task_failed",
    "task_cancelled": "task_cancelled",
    "rescheduled": "task_rescheduled",
    "node_joined": "node_joined",
    "node_dead": "node_dead",
    "node_drained": "node_drained",
    "master_activated": "master_changed",
    "alert": "alert",
    "alert_resolved": "alert_resolved",
}
BATCH = 500


def kind_of(event: str) -> str:
    return KINDS.get(event) or f"instance_{event}"


def read_events(engine: "Engine", since: int) -> list[dict[str, Any]]:
    """Durable events after `since`, oldest first (at most BATCH)."""
    with engine.store.lock:
        seq = engine.store.position()[1]
        rows = history_after(engine.store, since, BATCH)
    if rows and not engine.replicator.wait_for(seq, engine.config.replication_timeout):
        return []  # not yet safe from a failover: the client asks again
    return [{"id": r["id"], "time": r["time"], "kind": kind_of(r["event"]), "task": r["task_id"],
             "index": r["idx"], "job": r["job"], "name": r["name"], "node": r["node"], "detail": r["detail"]}
            for r in rows]


def wait_events(engine: "Engine", since: int, wait: float) -> list[dict[str, Any]]:
    """Long poll: events after `since`, waiting up to `wait` seconds for the first."""
    deadline = time.monotonic() + wait
    while True:
        engine.require_active()
        seq = engine.store.position()[1]
        events = read_events(engine, since)
        remaining = deadline - time.monotonic()
        if events or remaining <= 0:
            return events
        # Woken by the next commit (every commit notifies the replicator), so a waiting client hears
        # of an event at once rather than at the next 100 ms poll.
        with engine.replicator.cond:
            if engine.store.position()[1] == seq:
                engine.replicator.cond.wait(min(0.1, remaining))


def sse_stream(engine: "Engine", since: int, duration: float = 60.0) -> Iterator[str]:
    """Server-sent events for `duration` seconds; the browser or client reconnects with Last-Event-ID."""
    deadline = time.monotonic() + duration
    yield "retry: 500\n\n"
    while time.monotonic() < deadline and engine.role.valid():
        events = read_events(engine, since)
        for event in events:
            since = event["id"]
            yield f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
        if not events:
            yield ": idle\n\n"
            time.sleep(0.2)
