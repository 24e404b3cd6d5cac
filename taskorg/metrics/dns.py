"""The DNS service's figures: heartbeats and leases it answered as arbiter, elections it committed,
and, read when scraped, the consensus group as this member sees it (PySyncObj's own status)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from taskorg.metrics.registry import gauge as _gauge

if TYPE_CHECKING:
    from taskorg.dns.service import DnsService

HEARTBEATS = Counter("taskorg_dns_heartbeats", "Heartbeats answered by this DNS service as arbiter")
LEASE_GRANTS = Counter("taskorg_dns_lease_grants", "Heartbeats answered with the master lease (granted or renewed)")
ELECTIONS = Counter("taskorg_dns_elections", "Elections this DNS service decided and committed as arbiter")
VOTER_CHANGES = Counter("taskorg_consensus_voter_changes",
                        "Voters this DNS service added to or removed from the consensus group as its leader "
                        "(a dead voter replaced: one removal, then one addition)", labelnames=["kind"])
NODE_DEATHS = Counter("taskorg_dns_node_deaths", "Nodes this DNS service declared dead as arbiter")
BEAT_DATAGRAMS = Counter("taskorg_dns_heartbeat_datagrams",
                         "Heartbeat datagrams by outcome: answered; challenged (stale proof: the node's first, "
                         "or a replay); refused (not the arbiter, unknown node); dropped (not sealed with the "
                         "cluster key)", ["outcome"])
for _outcome in ("answered", "challenged", "refused", "dropped"):
    BEAT_DATAGRAMS.labels(_outcome)  # exported at zero from the start


def read(service: "DnsService") -> Iterator[Metric]:
    registry = service.registry
    status = registry.engine.getStatus()
    epoch, _ = registry.election()
    yield _gauge("taskorg_dns_epoch", "The epoch of the last committed election (this replica's)", epoch)
    yield _gauge("taskorg_dns_arbiter", "1 while this DNS service is the arbiter (grants the master lease)",
                 service.is_arbiter())
    members = GaugeMetricFamily("taskorg_dns_members", "Cluster members by state (this replica's)", labels=["state"])
    counts = dict.fromkeys(("active", "draining", "left"), 0)
    for member in registry.members(include_left=True):
        counts[member.state] = counts.get(member.state, 0) + 1
    for state, count in counts.items():
        members.add_metric([state], count)
    yield members
    arbiter = service.arbiter
    if arbiter is not None and service.is_arbiter():
        alive = GaugeMetricFamily("taskorg_dns_member_alive",
                                  "1 while a member heartbeats (from the arbiter only; 0: declared dead)",
                                  labels=["node", "address"])
        for member in registry.members():
            alive.add_metric([member.node, member.address],
                             float(arbiter.alive(member.node, service.config.node_dead_after)))
        yield alive
    yield _gauge("taskorg_consensus_voter", "1 when this DNS service votes in the consensus group", registry.voting)
    yield _gauge("taskorg_consensus_voters", "Voters of the consensus group", len(registry.voters))
    yield _gauge("taskorg_consensus_voters_reachable", "Voters this member reaches, itself included",
                 len(registry.reachable_voters()))
    yield _gauge("taskorg_consensus_leader", "1 while this member leads the consensus group",
                 status.get("state") == 2)  # PySyncObj's _RAFT_STATE.LEADER
    yield _gauge("taskorg_consensus_has_leader", "1 while this member knows a leader of the group",
                 status.get("leader") is not None)
    yield _gauge("taskorg_consensus_term", "Raft term as this member knows it", status.get("raft_term", 0))
    yield _gauge("taskorg_consensus_commit_index", "Raft commit index as this member knows it",
                 status.get("commit_idx", 0))
    yield _gauge("taskorg_consensus_last_applied", "Raft index this member has applied", status.get("last_applied", 0))
