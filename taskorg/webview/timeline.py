"""The last failover as a timeline: last heard, elected, declared dead, placed again, back running.

Pure: built from the master's replicated event history (`/v1/events`, whose
ids carry on across a failover) and the DNS service's members view (how long
ago it last heard from the dead node). Reading it costs a page or a few of
events from the end, never the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

# Events later than this after the change are another story (a later node death, a user's restart).
HORIZON = 120.0
# How far back the page looks for the last change of master, in events (pages of 500).
PAGE = 500
PAGES = 4


@dataclass(frozen=True)
class Step:
    kind: str      # heard | elected | dead | rescheduled | back | waiting
    title: str
    detail: str
    time: float
    offset: float  # seconds since the first step


@dataclass(frozen=True)
class Timeline:
    old_master: str | None
    new_master: str
    epoch: str
    steps: list[Step]
    rescheduled: int
    back: int
    summary: str

    @property
    def total(self) -> float:
        return self.steps[-1].offset if self.steps else 0.0


def windows(last_event: int) -> list[int]:
    """The `since` values to read, newest page first, to find the last change within PAGES pages."""
    return [max(0, last_event - PAGE * (n + 1)) for n in range(PAGES) if last_event - PAGE * n > 0]


def last_change(events: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    return max((e for e in events if e.get("kind") == "master_changed"), key=lambda e: e["id"], default=None)


def _epoch(detail: Any) -> str:
    text = str(detail or "")
    return text.split()[-1] if text.startswith("epoch") else text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def build(events: list[dict[str, Any]], dns_members: list[dict[str, Any]] | None, now: float) -> Timeline | None:
    """The timeline of the last `master_changed` among `events` (oldest first, ids increasing)."""
    change = last_change(events)
    if change is None:
        return None
    changes = [e for e in events if e.get("kind") == "master_changed" and e["id"] < change["id"]]
    after = [e for e in events if e["id"] > change["id"] and e["time"] - change["time"] <= HORIZON]
    dead = [e for e in after if e.get("kind") == "node_dead"]
    moved = [e for e in after if e.get("kind") == "task_rescheduled"]
    # Who was master before: the previous change names it; else the node that died, or whose tasks moved.
    old_master = (changes[-1].get("node") if changes else None) or next(
        (str(e["node"]) for e in dead + moved if e.get("node")), None)
    new_master = str(change.get("node") or "?")
    steps: list[tuple[str, str, str, float]] = []

    members = {m.get("node"): m for m in dns_members or []}
    gone = members.get(old_master) if old_master else None
    if gone and not gone.get("alive") and gone.get("last_seen_ago") is not None:
        heard = now - float(gone["last_seen_ago"])
        if heard <= change["time"]:
            steps.append(("heard", f"{old_master} last heard", "heartbeats stop here", heard))
    epoch = _epoch(change.get("detail"))
    steps.append(("elected", f"{new_master} is master", f"elected, epoch {epoch}", change["time"]))
    for event in dead:
        steps.append(("dead", f"{event['node']} declared dead", "no heartbeat", event["time"]))

    pending = {(e.get("task"), e.get("index")): e["time"] for e in moved}
    back_at: dict[tuple[Any, Any], float] = {}
    for event in after:
        key = (event.get("task"), event.get("index"))
        if event.get("kind") == "instance_running" and key in pending and event["time"] >= pending[key]:
            back_at.setdefault(key, event["time"])
    if moved:
        names = sorted({str(e.get("name") or e.get("task")) for e in moved})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        steps.append(("rescheduled", f"{_count(len(moved), 'instance')} placed again", shown, moved[0]["time"]))
        if back_at:
            complete = len(back_at) == len(pending)
            title = "all back running" if complete else f"{len(back_at)} of {len(pending)} back running"
            steps.append(("back", title, "running on a living node", max(back_at.values())))
        if len(back_at) < len(pending):
            steps.append(("waiting", f"{len(pending) - len(back_at)} not running yet", "still starting or pending",
                          now))
    steps.sort(key=lambda s: s[3])
    start = steps[0][3]
    ordered = [Step(kind, title, detail, at, max(0.0, at - start)) for kind, title, detail, at in steps]
    end = next((s for s in reversed(ordered) if s.kind == "back"), None)
    # The new master may miss the death itself (it was already dead at its first look): moved tasks tell too.
    died = bool(dead or moved or any(s.kind == "heard" for s in ordered))
    if not died:
        summary = f"{new_master} became master at epoch {epoch} (no node died: a start or a handover)."
    elif end is not None and len(back_at) == len(pending):
        summary = (f"{old_master} → {new_master}: every task back {_seconds(end.offset)} after "
                   f"{'the last heartbeat' if ordered[0].kind == 'heard' else 'the election'}.")
    elif moved:
        summary = f"{old_master} → {new_master}: {len(back_at)} of {len(pending)} moved tasks back so far."
    else:
        summary = f"{old_master} → {new_master}: no task had to move."
    return Timeline(old_master, new_master, epoch, ordered, len(pending), len(back_at), summary)


# ---- geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mark:
    step: Step
    label_x: float
    label_y: float
    tick_x: float
    tick_y: float
    leader: str


@dataclass(frozen=True)
class Drawing:
    marks: list[Mark]
    axis: str
    width: float
    height: float
    wide: bool
    axis_end: tuple[float, float]


def draw(timeline: Timeline, wide: bool) -> Drawing:
    """Steps evenly spaced (readable when they are milliseconds apart), each with a leader
    to its true moment on a proportional axis, so the picture shows both order and scale."""
    count = len(timeline.steps)
    total = timeline.total or 1.0
    marks = []
    if wide:
        width, margin, axis_y = 960.0, 40.0, 150.0
        span = width - 2 * margin
        for i, step in enumerate(timeline.steps):
            label_x = margin + (i + 0.5) * span / count
            tick_x = margin + step.offset / total * span
            marks.append(Mark(step, label_x, 18, tick_x, axis_y,
                              f"M{label_x:.1f},96 C{label_x:.1f},122 {tick_x:.1f},120 {tick_x:.1f},{axis_y - 6:.1f}"))
        return Drawing(marks, f"M{margin},{axis_y} H{width - margin}", width, axis_y + 30, True,
                       (width - margin, axis_y))
    width, top, row, axis_x = 360.0, 16.0, 74.0, 22.0
    height = top + count * row
    span = height - top - 24
    for i, step in enumerate(timeline.steps):
        label_y = top + i * row
        tick_y = top + step.offset / total * span
        marks.append(Mark(step, 92, label_y, axis_x, tick_y,
                          f"M84,{label_y + 12:.1f} C60,{label_y + 12:.1f} 50,{tick_y:.1f} {axis_x + 6:.1f},{tick_y:.1f}"))
    return Drawing(marks, f"M{axis_x},{top} V{top + span}", width, height, False, (axis_x, top + span))
