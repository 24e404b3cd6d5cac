"""The node service's figures: heartbeats by outcome, lease renewals and their round trip, its role."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric

from taskorg.metrics.registry import gauge

if TYPE_CHECKING:
    from taskorg.node.service import NodeService

HEARTBEATS = Counter("taskorg_node_heartbeats", "Heartbeats sent to the DNS service, by outcome "
                     "(answered, refused, unreachable)", ["outcome"])
LEASE_RENEWALS = Counter("taskorg_node_lease_renewals", "Heartbeats answered with the master lease")
LEASE_RENEWAL_SECONDS = Histogram("taskorg_node_lease_renewal_seconds",
                                  "Round trip of a heartbeat that renewed the master lease",
                                  buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6))
for _outcome in ("answered", "refused", "unreachable"):
    HEARTBEATS.labels(_outcome)  # exported at zero from the start
BEATS_BY_TRANSPORT = Counter("taskorg_node_heartbeat_answers", "Answered heartbeats by how they went: a sealed "
                             "datagram to the arbiter, or HTTPS (the fallback, relayed by any DNS service)",
                             ["transport"])
for _transport in ("datagram", "https"):
    BEATS_BY_TRANSPORT.labels(_transport)


def read(service: "NodeService") -> Iterator[Metric]:
    role = service.role
    yield gauge("taskorg_node_master_role", "1 while this node's master service is told to be active", role.active)
    yield gauge("taskorg_node_epoch", "The epoch this node service knows", role.epoch)
    yield gauge("taskorg_node_lease_remaining_seconds", "Seconds left on the master lease this node holds",
                max(0.0, role.lease_until - time.monotonic()))
    yield gauge("taskorg_node_heartbeat_age_seconds", "Seconds since a DNS service last answered a heartbeat",
                time.monotonic() - service.last_answer if service.last_answer else -1)
