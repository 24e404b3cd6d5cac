"""`taskorg events [-f]`: the master's replicated event stream, filtered by job, task and kind.

Events are the master's history rows, numbered and replicated, so their ids
carry on unchanged after a failover: a follow asks for the events after the
last id it printed (a long poll, `GET /v1/events?since=ID&wait=S`) through
whichever master DNS names, and shows each event once, in order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from taskorg.cli.commands import Group
from taskorg.cli.context import UsageError, make_client
from taskorg.cli.output import emit_json
from taskorg.client import ClusterUnavailable
from taskorg.master.events import KINDS
from taskorg.net.client import ServiceError, ServiceUnavailable

EVENT_KINDS = sorted(set(KINDS.values()))
MAX_PAGES = 1000  # a listing without -f reads at most this many pages of 500 events
GIVE_UP_AFTER = 120.0  # seconds without reaching any master before a follow gives up
WAIT = 5.0


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: of one job, of one task, of some kinds (empty: any)."""

    job: str | None = None
    task: str | None = None
    kinds: frozenset[str] = frozenset()

    def __call__(self, event: dict[str, Any]) -> bool:
        return ((self.job is None or event.get("job") == self.job)
                and (self.task is None or event.get("task") == self.task)
                and (not self.kinds or event.get("kind") in self.kinds))


def parse_kinds(values: Iterable[str]) -> frozenset[str]:
    """`--kind` values (repeated or comma-separated); instance events are `instance_<event>`."""
    kinds = frozenset(k.strip() for value in values for k in value.split(",") if k.strip())
    unknown = sorted(k for k in kinds if k not in EVENT_KINDS and not k.startswith("instance_"))
    if unknown:
        raise UsageError(f"--kind: unknown kind {unknown[0]!r}; kinds: {', '.join(EVENT_KINDS)}, instance_<event>")
    return kinds


def event_line(event: dict[str, Any]) -> str:
    """One event for a person: when, what, which task of which job, where, and why."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time"]))
    subject = f"{event['name']} ({event['task']}/{event['index']})" if event.get("task") else ""
    parts = [when, f"#{event['id']}", event["kind"], subject,
             f"on {event['node']}" if event.get("node") else "", event.get("detail") or ""]
    return "  ".join(p for p in parts if p)


def follow_events(client: Any, since: int, show: Callable[[dict[str, Any]], None], wanted: EventFilter,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                  until: float | None = None) -> int:
    """Show every wanted event after `since` as it comes, across failovers; 1 after GIVE_UP_AFTER seconds
    without a master, 0 at `until` (monotonic; None: never)."""
    reached = clock()
    while until is None or clock() < until:
        try:
            events = client.events(since, wait=WAIT)
        except (ServiceUnavailable, ClusterUnavailable, ServiceError) as exc:
            if isinstance(exc, ServiceError) and exc.status not in (409, 502, 503):
                raise
            if clock() - reached > GIVE_UP_AFTER:
                print(f"events: gave up after {GIVE_UP_AFTER:g} s without a master: {exc}", file=sys.stderr)
                return 1
            sleep(0.25)
            continue
        reached = clock()
        for event in events:
            since = event["id"]
            if wanted(event):
                show(event)
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    kinds = parse_kinds(args.kind or [])
    client = make_client(args)
    job = task = None
    if args.job:
        from taskorg.cli.job_commands import find_job_of

        job = find_job_of(client, args.job)["id"]
    if args.task:
        from taskorg.cli.task_commands import task_id

        task = task_id(client, args.task)
    wanted = EventFilter(job, task, kinds)
    since = args.since if args.since is not None else (last_event_id(client) if args.follow else 0)
    if args.follow:
        def show(event: dict[str, Any]) -> None:
            print(json.dumps(event) if args.json else event_line(event), flush=True)

        try:
            return follow_events(client, since, show, wanted)
        except KeyboardInterrupt:
            return 130
    found = []
    for _ in range(MAX_PAGES):
        page = client.events(since, wait=0)
        if not page:
            break
        since = page[-1]["id"]
        found.extend(e for e in page if wanted(e))
    if args.json:
        emit_json(found)
    else:
        for event in found:
            print(event_line(event))
    return 0


def last_event_id(client: Any) -> int:
    """Where a follow starts by default: after the newest event (docker's habit: only what comes)."""
    return int(client.status().get("last_event") or 0)


def register(top: Group) -> None:
    p = top.add("events", "the cluster's events (tasks, nodes, master changes); -f follows them as they come",
                ["taskorg events --since 0 --job pipeline", "taskorg events -f",
                 "taskorg events -f --kind node_dead,master_changed --json"], cmd_events)
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing events as they happen, across a master failover (Ctrl-C stops); "
                        "--json: one JSON object a line")
    p.add_argument("--since", type=int, metavar="ID",
                   help="only events after this id (default: all without -f, only new ones with -f)")
    p.add_argument("--job", help="only this job's events (id, id prefix or name)")
    p.add_argument("--task", help="only this task's events (id, id prefix, name or job/name)")
    p.add_argument("--kind", action="append", metavar="KIND",
                   help=f"only these kinds (repeat or comma-separate): {', '.join(EVENT_KINDS)}, instance_<event>")
