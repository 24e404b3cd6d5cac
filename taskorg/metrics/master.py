"""The master service's figures: counted where they happen, or read from the engine when scraped.

Counters: placements, reschedules, task events, elections seen, activations,
lease renewals and their latency (a renewal's heartbeat sent by the node
service, to this process holding the new deadline). Scrape time: tasks by
state (active master only, so a sum over the cluster counts each task once),
role, epoch, lease left, replica position, replication lag per standby.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from taskorg.metrics.registry import gauge as _gauge

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

PLACEMENTS = Counter("taskorg_master_placements", "Task instances placed on a node (start orders sent)")
RESCHEDULES = Counter("taskorg_master_reschedules", "Task instances taken off a node to be placed again",
                      ["reason"])
TASK_EVENTS = Counter("taskorg_master_task_events", "Task and node history events committed by this master, by kind",
                      ["event"])
ELECTIONS = Counter("taskorg_master_elections", "New epochs this master service learned of (each is an election)")
ACTIVATIONS = Counter("taskorg_master_activations", "Times this master service became the active master")
LEASE_RENEWALS = Counter("taskorg_master_lease_renewals", "Lease renewals received while active")
LEASE_RENEWAL_SECONDS = Histogram(
    "taskorg_master_lease_renewal_seconds",
    "From the node service sending the heartbeat to this master service holding the renewed lease",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0))

for _reason in ("node", "lost"):
    RESCHEDULES.labels(_reason)  # exported at zero from the start: a rate over them is defined
# Every status is exported, zero or not, so a dashboard's series never vanish.
TASK_STATUSES = ("pending", "waiting", "starting", "running", "succeeded", "failed", "cancelled")
# History events that mean "placed again": their counter says why.
_RESCHEDULED = {"rescheduled": "node", "lost": "lost"}


def count_events(events: Iterable[str]) -> None:
    """Count committed history events (a handful of known names: bounded labels)."""
    for event in events:
        TASK_EVENTS.labels(event).inc()
        if event == "placed":
            PLACEMENTS.inc()
        elif event in _RESCHEDULED:
            RESCHEDULES.labels(_RESCHEDULED[event]).inc()


def renewed(lease_until: float, lease_timeout: float) -> None:
    """A renewal arrived: the lease counts from its heartbeat's sending, `lease_timeout` before its end."""
    LEASE_RENEWALS.inc()
    LEASE_RENEWAL_SECONDS.observe(max(0.0, time.monotonic() - (lease_until - lease_timeout)))


def read(engine: "Engine") -> Iterator[Metric]:
    """The engine's state as gauges, read at scrape time."""
    role = engine.role
    active = role.valid()
    yield _gauge("taskorg_master_active", "1 while this master service is the active master", float(active))
    yield _gauge("taskorg_master_epoch", "The epoch of this master service's role (the last election it knows)",
                 role.epoch)
    yield _gauge("taskorg_master_lease_remaining_seconds", "Seconds left on the lease this master acts on",
                 max(0.0, role.lease_until - time.monotonic()) if role.active else 0.0)
    epoch, seq = engine.store.position()
    yield _gauge("taskorg_master_replica_seq", "Sequence number of the last change in this replica", seq)
    yield _gauge("taskorg_master_replica_epoch", "Epoch of the last change in this replica", epoch)
    if not active:
        return
    counts = dict.fromkeys(TASK_STATUSES, 0.0)
    for row in engine.store.rows("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status"):
        counts[str(row["status"])] = float(row["n"])
    tasks = GaugeMetricFamily("taskorg_tasks", "Tasks by status (from the active master)", labels=["status"])
    for status, count in counts.items():
        tasks.add_metric([status], count)
    yield tasks
    changes = GaugeMetricFamily("taskorg_replication_lag_changes", "Changes a standby does not hold yet",
                                labels=["standby"])
    seconds = GaugeMetricFamily("taskorg_replication_lag_seconds",
                                "Age of the oldest change a standby does not hold yet (0: caught up)",
                                labels=["standby"])
    for standby, (behind, age) in engine.replicator.lag(seq).items():
        changes.add_metric([standby], float(behind))
        seconds.add_metric([standby], age)
    yield changes
    yield seconds
