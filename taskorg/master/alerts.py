"""Alert decisions: from what the active master sees (events, telemetry, replication, consensus) to
alerts that fire once and resolve once. Pure: no I/O, no clock of its own.

A *condition* (a node dead, a disk full, a standby lagging, a voter
unreachable, a task failing again and again, a node too hot) fires when it
starts to hold and resolves when it stops; while it holds, nothing more is
said. A *change of master* is an occurrence, not a condition: each one
fires once. The glue that gathers the observations and sends the alerts as
events and webhooks is `taskorg/master/alerting.py`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

KINDS = ("node_dead", "master_changed", "task_failing", "replication_lag", "disk_full", "temperature_high",
         "consensus_member_lost")
# Events (as the master's event stream names them) that count as one failure of a task.
FAILURES = ("instance_failed", "instance_start_failed", "instance_unhealthy")
CLEAR_MARGIN = 2.0  # a level must fall this far below its threshold to resolve (no flapping at the edge)


@dataclass(frozen=True)
class Thresholds:
    disk_percent: float = 90.0
    temperature: float = 80.0  # degrees Celsius, the hottest sensor of a node
    replication_lag: float = 10.0  # seconds a standby's oldest missing change has waited
    task_failures: int = 3  # failures of one task ...
    failure_window: float = 600.0  # ... within this many seconds

    @classmethod
    def from_config(cls, config: Any) -> "Thresholds":
        return cls(config.alert_disk_percent, config.alert_temperature, config.alert_replication_lag,
                   config.alert_task_failures, config.alert_failure_window)


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str  # what it is about: a node, a task id, a voter's address, an epoch
    message: str
    status: str = "firing"  # or "resolved"
    node: str | None = None
    value: float | None = None
    threshold: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.subject

    def resolved(self, message: str) -> "Alert":
        return Alert(self.kind, self.subject, message, "resolved", self.node, None, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.kind, "status": self.status, "subject": self.subject, "node": self.node,
                "message": self.message, "value": self.value, "threshold": self.threshold}


@dataclass
class Observation:
    """What the master saw since its last look. `now` is wall time (event times are wall time)."""

    now: float
    events: list[dict[str, Any]] = field(default_factory=list)  # new events, oldest first
    telemetry: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # fresh samples by node
    lags: Mapping[str, float] = field(default_factory=dict)  # seconds, by standby node
    dead: set[str] | None = None  # members (not left) whose heartbeats stopped; None: no fresh view
    voters: list[str] | None = None  # consensus voters, None when the DNS service did not answer
    reachable: list[str] | None = None


class AlertBook:
    """The conditions that hold now; `observe` says what fired and what resolved since the last look."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.active: dict[tuple[str, str], Alert] = {}
        self.failures: dict[str, deque[float]] = {}
        self.task_names: dict[str, str] = {}

    def observe(self, seen: Observation) -> list[Alert]:
        news: list[Alert] = []
        for event in seen.events:
            news += self._event(event)
        holding = {a.key: a for a in self._levels(seen)}
        holding.update({a.key: a for a in self._failing(seen.now)})
        for key in [k for k in self.active if k[0] in LEVEL_KINDS and k not in holding]:
            news.append(self._resolve(key, seen))
        for key, alert in holding.items():
            if key not in self.active:
                self.active[key] = alert
                news.append(alert)
        return news

    # ---- occurrences, and failures counted from events ------------------------------------
    def _event(self, event: Mapping[str, Any]) -> list[Alert]:
        kind, node = event.get("kind"), event.get("node")
        if kind == "master_changed":
            return [Alert("master_changed", str(event.get("detail") or event.get("id")),
                          f"{node} is now the active master ({event.get('detail')})", node=node)]
        if is_failure(event) and event.get("task"):
            task = str(event["task"])
            self.task_names[task] = str(event.get("name") or task)
            self.failures.setdefault(task, deque(maxlen=max(1, self.thresholds.task_failures))).append(
                float(event.get("time") or 0.0))
        return []

    def _failing(self, now: float) -> list[Alert]:
        limit, window = self.thresholds.task_failures, self.thresholds.failure_window
        found = []
        for task, times in list(self.failures.items()):
            recent = [t for t in times if now - t <= window]
            if not recent:
                del self.failures[task]
            elif len(recent) >= limit:
                name = self.task_names.get(task, task)
                found.append(Alert("task_failing", task, f"task {name} ({task}) failed {len(recent)} times "
                                   f"within {window:g} s", value=len(recent), threshold=limit))
        return found

    # ---- levels ---------------------------------------------------------------------------
    def _levels(self, seen: Observation) -> list[Alert]:
        t = self.thresholds
        found = self._kept("node_dead") if seen.dead is None else [
            Alert("node_dead", node, f"node {node} is dead: no heartbeat", node=node) for node in sorted(seen.dead)]
        for node, sample in sorted(seen.telemetry.items()):
            disk = sample.get("disk") or {}
            if _over(disk.get("percent"), t.disk_percent, ("disk_full", node) in self.active):
                found.append(Alert("disk_full", node, f"disk of {node} is {disk['percent']:.0f}% full "
                                   f"({disk.get('mount')}, threshold {t.disk_percent:g}%)", node=node,
                                   value=disk["percent"], threshold=t.disk_percent))
            hottest = max((sample.get("temperatures") or {}).values(), default=None)
            if _over(hottest, t.temperature, ("temperature_high", node) in self.active):
                found.append(Alert("temperature_high", node, f"{node} is at {hottest:.0f} °C "
                                   f"(threshold {t.temperature:g} °C)", node=node, value=hottest,
                                   threshold=t.temperature))
        for node, seconds in sorted(seen.lags.items()):
            if _over(seconds, t.replication_lag, ("replication_lag", node) in self.active):
                found.append(Alert("replication_lag", node, f"standby {node} is {seconds:.1f} s behind the master "
                                   f"(threshold {t.replication_lag:g} s)", node=node, value=round(seconds, 3),
                                   threshold=t.replication_lag))
        if seen.voters is not None and seen.reachable is not None:
            for voter in seen.voters:
                if voter not in seen.reachable:
                    found.append(Alert("consensus_member_lost", voter, f"consensus voter {voter} is unreachable "
                                       f"({len(seen.reachable)} of {len(seen.voters)} voters answer)"))
        else:
            found += self._kept("consensus_member_lost")
        return found

    def _kept(self, kind: str) -> list[Alert]:
        """Unknown this time (no fresh view): what held still holds."""
        return [a for k, a in self.active.items() if k[0] == kind]

    def _resolve(self, key: tuple[str, str], seen: Observation) -> Alert:
        alert = self.active.pop(key)
        if alert.kind == "task_failing":
            return alert.resolved(f"task {self.task_names.get(alert.subject, alert.subject)} has not failed "
                                  f"{self.thresholds.task_failures} times within {self.thresholds.failure_window:g} s")
        if alert.kind == "node_dead":
            return alert.resolved(f"node {alert.subject} is alive again")
        if alert.kind == "consensus_member_lost":
            return alert.resolved(f"consensus voter {alert.subject} answers again")
        if alert.kind == "disk_full" or alert.kind == "temperature_high":
            gone = alert.subject not in seen.telemetry
            return alert.resolved(f"{alert.subject}: no fresh telemetry" if gone
                                  else f"{alert.subject}: back below {alert.threshold:g}")
        return alert.resolved(f"{alert.subject}: back below {alert.threshold:g} s")


LEVEL_KINDS = ("node_dead", "task_failing", "replication_lag", "disk_full", "temperature_high", "consensus_member_lost")


def is_failure(event: Mapping[str, Any]) -> bool:
    """One failure of a task: a failed start or run, an unhealthy container, or a restart after an error."""
    kind = event.get("kind")
    if kind in FAILURES:
        return True
    return kind == "instance_restarting" and not str(event.get("detail") or "").startswith("exited with code 0")


def _over(value: float | None, threshold: float, holding: bool) -> bool:
    """Over the threshold; once over, it holds until it falls CLEAR_MARGIN below."""
    if value is None:
        return False
    return value >= (threshold - CLEAR_MARGIN if holding else threshold)


def alert_events(alerts: Iterable[Alert]) -> list[tuple[str, str | None, str]]:
    """(history event, node, detail) for each alert, as the master records them in its event stream."""
    return [("alert" if a.status == "firing" else "alert_resolved", a.node, f"{a.kind} {a.subject}: {a.message}")
            for a in alerts]
