"""A member of the cluster, as the registry holds it.

Its own module because both registries hand it out: the replicated one
(`taskorg.dns.replicated`) and the SQLite one an older cluster is carried
over from (`taskorg.dns.store`). Names are stable: an identity (MAC address,
or MAC@address where machines share a MAC, as loopback test nodes do) keeps
its node number forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskorg.labels import NO_MASTER_SERVICE


@dataclass(frozen=True)
class Member:
    number: int
    identity: str
    address: str
    labels: dict[str, str]
    state: str  # active | draining | left

    @property
    def node(self) -> str:
        return f"node{self.number}"


def may_be_master(member: Member) -> bool:
    """Whether the arbiter may elect this member: active, and running a master service (a node with
    the setting `master_service: false` labels itself so; electing it would leave the cluster with
    a master nobody can reach)."""
    return member.state == "active" and member.labels.get(NO_MASTER_SERVICE) != "true"
